module asyncjobs.local/e2e/k8s/build/pause

go 1.24.0
