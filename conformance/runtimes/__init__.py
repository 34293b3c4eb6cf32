"""The two runtimes behind the seam: ``live`` carries a check out on a cluster, ``planning`` records it
(``--plan``); a failed live check's evidence is collected by ``failure_evidence``."""
