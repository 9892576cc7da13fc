"""The S3 blob store: blobs as objects in any S3-protocol store (AWS, MinIO, Ceph, ...), via
aiobotocore, for registries of several nodes. Upload state lives in the bucket, so any node
can continue an upload; clients may be redirected to presigned URLs to fetch blobs."""
