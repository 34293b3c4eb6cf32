"""The world the checks reach: in-cluster origins under public names, their PKI, the client workloads."""
