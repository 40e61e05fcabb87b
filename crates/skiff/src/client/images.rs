//! The client's side of image pulls and pushes, and the NDJSON streams the daemon answers
//! with (a followed log, a pull's steps).

use super::{ApiClient, ClientError};
use futures::Stream;
use reqwest::{Method, Response};
use serde::de::DeserializeOwned;
use skiff_core::api::{ImageEvent, PullRequest, PushRequest};

impl ApiClient {
    /// `POST /v1/images/pull`: the daemon pulls `image` from its registry; each line of the
    /// answer as it comes.
    pub async fn pull_image(
        &self,
        image: &str,
    ) -> Result<impl Stream<Item = Result<ImageEvent, ClientError>> + use<>, ClientError> {
        let request = self
            .request(Method::POST, &["v1", "images", "pull"])
            .json(&PullRequest {
                image: image.to_string(),
            });
        Ok(self.ndjson(self.send(request).await?))
    }

    /// `POST /v1/images/push`: the daemon pushes `image` (as `to`, if given) to its
    /// registry; each line of the answer as it comes.
    pub async fn push_image(
        &self,
        image: &str,
        to: Option<&str>,
    ) -> Result<impl Stream<Item = Result<ImageEvent, ClientError>> + use<>, ClientError> {
        let request = self
            .request(Method::POST, &["v1", "images", "push"])
            .json(&PushRequest {
                image: image.to_string(),
                to: to.map(str::to_string),
            });
        Ok(self.ndjson(self.send(request).await?))
    }

    /// The JSON lines of `response`, each decoded as it arrives; blank lines (keep-alives)
    /// are skipped.
    pub(super) fn ndjson<T: DeserializeOwned>(
        &self,
        response: Response,
    ) -> impl Stream<Item = Result<T, ClientError>> + use<T> {
        let client = self.clone();
        let state = (Box::pin(response.bytes_stream()), Vec::<u8>::new());
        futures::stream::unfold(state, move |(mut bytes, mut pending)| {
            let client = client.clone();
            async move {
                use futures::StreamExt;
                loop {
                    if let Some(end) = pending.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=end).collect();
                        let line = &line[..line.len() - 1];
                        if line.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        let item =
                            serde_json::from_slice::<T>(line).map_err(|err| ClientError::Decode {
                                url: client.shown.clone(),
                                reason: err.to_string(),
                            });
                        return Some((item, (bytes, pending)));
                    }
                    match bytes.next().await {
                        Some(Ok(chunk)) => pending.extend_from_slice(&chunk),
                        Some(Err(err)) => {
                            return Some((Err(client.transport(&err)), (bytes, Vec::new())))
                        }
                        None => return None,
                    }
                }
            }
        })
    }
}
