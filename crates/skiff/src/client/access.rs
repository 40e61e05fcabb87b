//! The client's side of tokens, access keys, invoke keys, the audit log, namespaces and
//! the rotation of the secrets' key.

use super::{ApiClient, ClientError, DEPLOY_TIMEOUT, REQUEST_TIMEOUT};
use reqwest::Method;
use skiff_core::api::{
    AuditPage, AuditQuery, NamespaceList, NamespaceView, Quota, TokenCreated, TokenList,
    TokenRequest, TokenView,
};

impl ApiClient {
    /// `POST /v1/secrets/rotate-key`: encrypts every secret at rest with a new key.
    pub async fn rotate_secret_key(&self) -> Result<skiff_core::api::KeyRotation, ClientError> {
        let request = self
            .request(Method::POST, &["v1", "secrets", "rotate-key"])
            .timeout(DEPLOY_TIMEOUT);
        self.json(self.send(request).await?).await
    }

    /// `POST /v1/access-keys`: a new access key of the Lambda API, with its secret.
    pub async fn create_access_key(
        &self,
        request: &skiff_core::api::AccessKeyRequest,
    ) -> Result<skiff_core::api::AccessKeyCreated, ClientError> {
        let request = self
            .request(Method::POST, &["v1", "access-keys"])
            .timeout(REQUEST_TIMEOUT)
            .json(request);
        self.json(self.send(request).await?).await
    }

    /// `GET /v1/access-keys`: the access keys of the Lambda API.
    pub async fn list_access_keys(
        &self,
    ) -> Result<Vec<skiff_core::api::AccessKeyView>, ClientError> {
        let request = self
            .request(Method::GET, &["v1", "access-keys"])
            .timeout(REQUEST_TIMEOUT);
        let list: skiff_core::api::AccessKeyList = self.json(self.send(request).await?).await?;
        Ok(list.access_keys)
    }

    /// `DELETE /v1/access-keys/{id}`: revokes an access key.
    pub async fn revoke_access_key(&self, id: &str) -> Result<(), ClientError> {
        let request = self
            .request(Method::DELETE, &["v1", "access-keys", id])
            .timeout(REQUEST_TIMEOUT);
        self.send(request).await?;
        Ok(())
    }

    /// `POST /v1/tokens`: makes a token; the answer holds its secret.
    pub async fn create_token(&self, request: &TokenRequest) -> Result<TokenCreated, ClientError> {
        let request = self
            .request(Method::POST, &["v1", "tokens"])
            .timeout(REQUEST_TIMEOUT)
            .json(request);
        self.json(self.send(request).await?).await
    }

    /// `GET /v1/tokens`.
    pub async fn list_tokens(&self) -> Result<Vec<TokenView>, ClientError> {
        let request = self
            .request(Method::GET, &["v1", "tokens"])
            .timeout(REQUEST_TIMEOUT);
        let list: TokenList = self.json(self.send(request).await?).await?;
        Ok(list.tokens)
    }

    /// `DELETE /v1/tokens/{id}`.
    pub async fn revoke_token(&self, id: &str) -> Result<TokenView, ClientError> {
        let request = self
            .request(Method::DELETE, &["v1", "tokens", id])
            .timeout(REQUEST_TIMEOUT);
        self.json(self.send(request).await?).await
    }

    /// `POST /v1/functions/{name}/keys`: makes an invoke key of a function.
    pub async fn create_key(
        &self,
        function: &str,
        name: Option<&str>,
    ) -> Result<TokenCreated, ClientError> {
        let request = self
            .request(Method::POST, &["v1", "functions", function, "keys"])
            .timeout(REQUEST_TIMEOUT)
            .json(&serde_json::json!({ "name": name }));
        self.json(self.send(request).await?).await
    }

    /// `GET /v1/functions/{name}/keys`.
    pub async fn list_keys(&self, function: &str) -> Result<Vec<TokenView>, ClientError> {
        let request = self
            .request(Method::GET, &["v1", "functions", function, "keys"])
            .timeout(REQUEST_TIMEOUT);
        let list: TokenList = self.json(self.send(request).await?).await?;
        Ok(list.tokens)
    }

    /// `DELETE /v1/functions/{name}/keys/{id}`.
    pub async fn revoke_key(&self, function: &str, id: &str) -> Result<TokenView, ClientError> {
        let request = self
            .request(Method::DELETE, &["v1", "functions", function, "keys", id])
            .timeout(REQUEST_TIMEOUT);
        self.json(self.send(request).await?).await
    }

    /// `GET /v1/audit`.
    pub async fn audit(&self, query: &AuditQuery) -> Result<AuditPage, ClientError> {
        let AuditQuery {
            namespace,
            before,
            limit,
        } = query;
        let mut url = self.url_of(&["v1", "audit"]);
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(namespace) = namespace {
                pairs.append_pair("namespace", namespace);
            }
            if let Some(before) = before {
                pairs.append_pair("before", before);
            }
            if let Some(limit) = limit {
                pairs.append_pair("limit", &limit.to_string());
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        let request = self.http.get(url).timeout(REQUEST_TIMEOUT);
        self.json(self.send(request).await?).await
    }

    /// `GET /v1/namespaces`.
    pub async fn namespaces(&self) -> Result<Vec<NamespaceView>, ClientError> {
        let request = self
            .request(Method::GET, &["v1", "namespaces"])
            .timeout(REQUEST_TIMEOUT);
        let list: NamespaceList = self.json(self.send(request).await?).await?;
        Ok(list.namespaces)
    }

    /// `PUT /v1/namespaces/{name}`: sets a namespace's quotas.
    pub async fn set_quota(&self, name: &str, quota: &Quota) -> Result<NamespaceView, ClientError> {
        let request = self
            .request(Method::PUT, &["v1", "namespaces", name])
            .timeout(REQUEST_TIMEOUT)
            .json(quota);
        self.json(self.send(request).await?).await
    }
}
