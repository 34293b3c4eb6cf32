"""``python -m conformance.images``: list, resolve and load the images of the image list."""

import sys

from conformance.images.loading import main

sys.exit(main())
