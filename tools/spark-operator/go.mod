module tiers.dev/tools/spark-operator

go 1.26.0

// Not built: the tests read the SparkApplication CRD (v1beta2) from this module's source.
require github.com/kubeflow/spark-operator/v2 v2.5.2
