module tiers.dev/tools/gateway-api

go 1.26.0

// Not built: the tests install the Gateway API's standard CRDs (config/crd/standard/) from this
// module's source, to apply the HTTPRoutes of spec.expose against the real schema.
require sigs.k8s.io/gateway-api v1.6.3
