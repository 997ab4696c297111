module tiers.dev/tools/cert-manager

go 1.26.0

// Not built: the tests install cert-manager's own Certificate CRD (deploy/crds/) from this
// module's source, to apply the Certificates of spec.tls.issuerRef against the real schema.
// cert-manager's controller is not served by the Go module proxy (cmd/controller is a nested
// module without version tags), so no controller issues them here.
require github.com/cert-manager/cert-manager v1.21.2
