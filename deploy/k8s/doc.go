// Package k8s holds wasiserve's Kubernetes manifests (wasiserve.yaml) and the
// test that decodes them strictly into the k8s.io/api types and checks that
// they fit together: a module of its own, so that the server's module does
// not depend on the Kubernetes API.
package k8s
