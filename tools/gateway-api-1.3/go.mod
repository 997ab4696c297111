module tiers.dev/tools/gateway-api-1.3

go 1.26.0

// Not built: the tests install the BackendTLSPolicy CRD of Gateway API 1.3 (experimental
// channel, gateway.networking.k8s.io/v1alpha3) from this module's source, to apply the
// BackendTLSPolicy the operator makes on clusters that serve only that version.
require sigs.k8s.io/gateway-api v1.3.0
