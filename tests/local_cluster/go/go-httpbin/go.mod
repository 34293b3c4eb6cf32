module egress-conformance/tests/local_cluster/go/go-httpbin

go 1.25.0

require github.com/mccutchen/go-httpbin/v2 v2.15.0
