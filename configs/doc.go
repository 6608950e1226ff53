// Package configs holds the deployment files of writebehind: an example
// environment, a docker compose file, Kubernetes manifests, a KEDA scaler,
// Prometheus alert rules and a Grafana dashboard. Its test parses every one
// of them and checks the metric names they use against the code.
package configs
