module asyncjobs.local/e2e/k8s/gomod/pause

go 1.24.0
