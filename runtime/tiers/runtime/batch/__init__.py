"""batch: the Spark job that scores a dataset with the model, resumable, with an estimate first.

`python -m tiers.runtime.batch run|estimate` (see `cli`). A run reads the input (JSON lines, CSV,
Parquet, or an OpenAI Batch API input file), skips the ids an earlier attempt already scored,
scores the rest with the shared model client (`tiers.runtime.modelcall`) in Spark's Python
workers, and writes one result per record (for an OpenAI batch file, OpenAI's output and error
files: `openai_lines`). Each Spark task commits its own files, so a killed run loses at most the
records its running tasks held; the next attempt scores only what is missing or failed.
Progress, tokens and cost are counted by the driver and published where the operator reads them.
"""
