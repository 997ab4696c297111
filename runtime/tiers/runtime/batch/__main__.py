from tiers.runtime.batch import cli

cli.main()
