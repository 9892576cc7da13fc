"""The S3 blob store: any S3-protocol object store, via aiobotocore."""
