//! How a failed S3 request becomes an `io::Error`: waited out ([`Unavailable`])
//! or shown to an operator.
//!
//! object_store keeps an answer's status in a type it does not export (its
//! typed `retry::RetryFailure` reaches only multipart retry policies), and
//! keeps neither the body nor the headers of a redirect, so the status could
//! only be read back from its message text. Instead [`KeepErrorAnswers`] sits
//! between object_store and reqwest and turns each error answer that
//! object_store has no variant of its own for into a typed [`ErrorAnswer`],
//! with the status, S3's error code and the bucket's region. It hands that
//! back as an `HttpError` of the kind object_store already retries such an
//! answer for (`Request`: sent again whatever the method, like a 5xx), or
//! never retries (`Unknown`, like a 4xx), so object_store's retries are kept.
//! Answers object_store has variants for (304, 401, 403, 404, 409, 412) pass
//! through untouched. A request that got no answer is told apart by the
//! public `HttpError::kind`. S3's `400 RequestTimeout` is now sent again too,
//! as AWS's own clients do.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;

use object_store::ClientOptions;
use object_store::client::{HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpService, ReqwestConnector};

use crate::Unavailable;

/// The answers object_store turns into variants of its own error, which callers match on.
const PASSED_THROUGH: [u16; 6] = [304, 401, 403, 404, 409, 412];

/// Error answers from the store are kept as an [`ErrorAnswer`]; see the module doc.
#[derive(Debug, Default)]
pub(super) struct KeepErrorAnswers;

impl HttpConnector for KeepErrorAnswers {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(ErrorAnswerService { reqwest: ReqwestConnector::default().connect(options)? }))
    }
}

#[derive(Debug)]
struct ErrorAnswerService {
    reqwest: HttpClient,
}

// Written out as `#[async_trait]` expands it, to do without that macro crate.
impl HttpService for ErrorAnswerService {
    fn call<'life0, 'async_trait>(&'life0 self, request: HttpRequest) -> Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let response = self.reqwest.execute(request).await?;
            let status = response.status().as_u16();
            if response.status().is_success() || PASSED_THROUGH.contains(&status) {
                return Ok(response);
            }
            let bucket_region = response.headers().get("x-amz-bucket-region").and_then(|region| region.to_str().ok()).map(str::to_owned);
            let body = response.into_body().bytes().await?;
            let answer = ErrorAnswer::new(status, bucket_region, &String::from_utf8_lossy(&body));
            let kind = if answer.passes_by_itself() { HttpErrorKind::Request } else { HttpErrorKind::Unknown };
            Err(HttpError::new(kind, answer))
        })
    }
}

/// An error answer from the store, kept whole so that it is classified by its status and code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ErrorAnswer {
    status: u16,
    /// S3's `<Code>`, such as `RequestTimeout`, `SlowDown` or `PermanentRedirect`.
    code: Option<String>,
    /// S3's `<Message>`, or the start of a body that is not S3's XML.
    message: Option<String>,
    /// Where the bucket is, from the `x-amz-bucket-region` header or the body's `<Region>`.
    bucket_region: Option<String>,
}

/// S3's codes for a request signed for, or sent to, another region than the bucket's.
const MISDIRECTED_CODES: [&str; 4] = ["AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException", "InvalidRegion"];

impl ErrorAnswer {
    fn new(status: u16, bucket_region: Option<String>, body: &str) -> Self {
        let code = xml_element(body, "Code").map(str::to_owned);
        let message = match xml_element(body, "Message") {
            Some(message) => Some(message.to_owned()),
            None if code.is_none() && !body.trim().is_empty() => Some(body.trim().chars().take(200).collect()),
            None => None,
        };
        let bucket_region = bucket_region.or_else(|| xml_element(body, "Region").map(str::to_owned)).filter(|region| !region.is_empty());
        Self { status, code, message, bucket_region }
    }

    /// Whether waiting may mend it: S3's `400 RequestTimeout` (the request came
    /// too slowly), 408, 429 "slow down", and any 5xx.
    fn passes_by_itself(&self) -> bool {
        matches!(self.status, 408 | 429 | 500..=599) || (self.status == 400 && self.code.as_deref() == Some("RequestTimeout"))
    }

    /// Whether the store says the bucket is elsewhere: a redirect, or S3's
    /// refusal of a request signed for another region.
    fn is_misdirected(&self) -> bool {
        (300..400).contains(&self.status) || self.code.as_deref().is_some_and(|code| MISDIRECTED_CODES.contains(&code))
    }
}

impl fmt::Display for ErrorAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the store answered HTTP {}", self.status)?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ErrorAnswer {}

/// The text of the first `<name>` element of S3's flat error XML.
fn xml_element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let length = xml[start..].find(&format!("</{name}>"))?;
    Some(xml[start..start + length].trim())
}

/// The bucket is in another region or behind another endpoint than the one
/// asked: nothing passes by waiting, so a process stops at start with this
/// sentence, which names the setting to change.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.sentence())]
pub(super) struct Misdirected {
    answer: ErrorAnswer,
    #[source]
    source: object_store::Error,
}

impl Misdirected {
    fn sentence(&self) -> String {
        match &self.answer.bucket_region {
            Some(region) => {
                format!("the bucket is in region {region}, not the one asked: start with --s3-region {region} (or AWS_REGION={region}); {}", self.answer)
            }
            None => format!(
                "the store sent the request elsewhere: the bucket is in another region or behind another endpoint, check --s3-region and --s3-endpoint; {}",
                self.answer
            ),
        }
    }
}

/// A missing object is `NotFound`, as for a file, and a refusal of our
/// credentials `PermissionDenied`. What may pass by itself (no answer, a
/// timeout, a 5xx, a 429, S3's `400 RequestTimeout`) is [`Unavailable`], which
/// is waited out. A bucket elsewhere is [`Misdirected`]. Anything else, such as
/// another 4xx, is an error of ours that an operator must see, and a job counts it as a try.
pub(super) fn to_io(error: object_store::Error) -> io::Error {
    use object_store::Error;
    match error {
        Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, error),
        Error::PermissionDenied { .. } | Error::Unauthenticated { .. } => io::Error::new(io::ErrorKind::PermissionDenied, error),
        error => match Failure::of(&error) {
            Some(Failure::Answer(answer)) if answer.is_misdirected() => io::Error::other(Misdirected { answer: answer.clone(), source: error }),
            Some(Failure::Answer(answer)) if answer.passes_by_itself() => io::Error::other(Unavailable(error.to_string())),
            Some(Failure::NoAnswer(HttpErrorKind::Connect | HttpErrorKind::Request | HttpErrorKind::Timeout | HttpErrorKind::Interrupted)) => {
                io::Error::other(Unavailable(error.to_string()))
            }
            _ => io::Error::other(error),
        },
    }
}

/// Why a request failed, as far as it is known from types.
#[derive(Debug)]
enum Failure<'a> {
    /// The store answered with an error.
    Answer(&'a ErrorAnswer),
    /// No answer came: connecting failed, timed out, or the connection broke.
    NoAnswer(HttpErrorKind),
}

impl<'a> Failure<'a> {
    /// The failure in `error`'s chain of sources. An answer is looked for first,
    /// as it travels inside an `HttpError` of its own.
    fn of(error: &'a (dyn std::error::Error + 'static)) -> Option<Self> {
        let chain = || std::iter::successors(Some(error), |error| error.source());
        chain()
            .find_map(|error| error.downcast_ref::<ErrorAnswer>().map(Failure::Answer))
            .or_else(|| chain().find_map(|error| error.downcast_ref::<HttpError>().map(|error| Failure::NoAnswer(error.kind()))))
    }
}
