//! The flags that choose where thumbq stores: both binaries take them.

use std::fmt;
use std::str::FromStr;

/// Where originals, thumbnails and records are kept.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StoreSettings {
    /// Keep originals, thumbnails and records in an S3-compatible bucket, `s3://bucket/prefix`,
    /// instead of the data directory (which then holds only uploads being received and the spools).
    #[arg(long = "store", env = "THUMBQ_STORE")]
    pub store: Option<S3Location>,

    /// The S3 endpoint, for stores other than AWS, e.g. http://127.0.0.1:9000.
    #[arg(long, env = "THUMBQ_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// The bucket's region.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub s3_region: String,

    /// Access key id; better given as AWS_ACCESS_KEY_ID than on a command line others can read.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub s3_access_key_id: Option<String>,

    /// Secret access key; better given as AWS_SECRET_ACCESS_KEY.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,

    /// Name the bucket in the host name (virtual-hosted style) rather than in the path.
    #[arg(long, env = "THUMBQ_S3_VIRTUAL_HOSTED")]
    pub s3_virtual_hosted: bool,
}

impl StoreSettings {
    /// An S3 store at `endpoint` with these credentials, path-style: how tests and demos name theirs.
    pub fn s3(location: S3Location, endpoint: &str, access_key_id: &str, secret_access_key: &str) -> Self {
        Self {
            store: Some(location),
            s3_endpoint: Some(endpoint.to_owned()),
            s3_region: "us-east-1".to_owned(),
            s3_access_key_id: Some(access_key_id.to_owned()),
            s3_secret_access_key: Some(secret_access_key.to_owned()),
            s3_virtual_hosted: false,
        }
    }
}

/// `s3://bucket/prefix`: a bucket, and a folder in it (possibly none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub prefix: String,
}

impl S3Location {
    /// The prefix followed by `/`, or nothing for the bucket's top.
    pub fn prefix_with_slash(&self) -> String {
        if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) }
    }
}

impl FromStr for S3Location {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let rest = text.strip_prefix("s3://").ok_or_else(|| format!("{text:?} is not an s3://bucket/prefix address"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's own rule for bucket names, which also keeps them out of paths and host names.
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-' || byte == b'.')
            && !bucket.starts_with(['-', '.'])
            && !bucket.ends_with(['-', '.']);
        if !valid_bucket {
            return Err(format!("{bucket:?} is not a bucket name: 3 to 63 lowercase letters, digits, '-' or '.'"));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|segment| segment.is_empty() || segment == "." || segment == "..") && !prefix.is_empty() {
            return Err(format!("{prefix:?} is not a prefix: empty, '.' and '..' segments are not allowed"));
        }
        Ok(Self { bucket: bucket.to_owned(), prefix: prefix.to_owned() })
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_s3_address_names_a_bucket_and_an_optional_prefix() {
        assert_eq!("s3://photos".parse(), Ok(S3Location { bucket: "photos".into(), prefix: String::new() }));
        assert_eq!("s3://photos/thumbq/prod/".parse(), Ok(S3Location { bucket: "photos".into(), prefix: "thumbq/prod".into() }));
        for bad in ["photos", "s3://", "s3://Photos", "s3://ab", "s3://photos/../x", "s3://photos/a//b", "file:///tmp"] {
            assert!(bad.parse::<S3Location>().is_err(), "{bad}");
        }
    }
}
