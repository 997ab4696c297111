"""The driver's view of file systems: whatever Spark's Hadoop configuration reads (local files,
s3a://, abfss:// where the image has their connectors), through the JVM's `FileSystem` API."""

from __future__ import annotations

from typing import Any

_COPY_BUFFER_BYTES = 1 << 16


class FileSystem:
    """Lists and deletes under one URI's file system, for a live Spark session."""

    def __init__(self, spark: Any, uri: str) -> None:
        self._jvm = spark.sparkContext._jvm
        self._path = self._jvm.org.apache.hadoop.fs.Path(uri)
        self._fs = self._path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())

    def exists(self, uri: str) -> bool:
        return bool(self._fs.exists(self._jvm.org.apache.hadoop.fs.Path(uri)))

    def children(self, uri: str) -> list[str]:
        """The names of the entries directly under `uri`; none when it does not exist."""
        path = self._jvm.org.apache.hadoop.fs.Path(uri)
        if not self._fs.exists(path):
            return []
        return [status.getPath().getName() for status in self._fs.listStatus(path)]

    def matches(self, pattern: str) -> bool:
        """Whether a glob such as `out/attempt=*/outcome=ok` matches anything."""
        found = self._fs.globStatus(self._jvm.org.apache.hadoop.fs.Path(pattern))
        return found is not None and len(found) > 0

    def delete(self, uri: str) -> None:
        self._fs.delete(self._jvm.org.apache.hadoop.fs.Path(uri), True)

    def size(self, uri: str) -> int:
        """Bytes under `uri` (a file or a folder), for sizing Spark's input splits."""
        path = self._jvm.org.apache.hadoop.fs.Path(uri)
        return int(self._fs.getContentSummary(path).getLength())

    def concatenate(self, pattern: str, target: str) -> int:
        """Writes the files a glob matches, one after another in name order, into `target`,
        replacing it; returns how many. The bytes stay in the JVM. It is written beside `target`
        under a hidden name and then renamed, so a reader never sees half of it."""
        hadoop = self._jvm.org.apache.hadoop
        found = self._fs.globStatus(hadoop.fs.Path(pattern)) or []
        sources = sorted(
            (status.getPath() for status in found if status.isFile()), key=lambda p: p.toString()
        )
        final = hadoop.fs.Path(target)
        temporary = hadoop.fs.Path(final.getParent(), f".{final.getName()}.tmp")
        out = self._fs.create(temporary, True)
        try:
            for path in sources:
                source = self._fs.open(path)
                try:
                    hadoop.io.IOUtils.copyBytes(source, out, _COPY_BUFFER_BYTES, False)
                finally:
                    source.close()
        finally:
            out.close()
        self._fs.delete(final, False)
        if not self._fs.rename(temporary, final):
            raise OSError(f"could not rename {temporary.toString()} to {target}")
        return len(sources)
