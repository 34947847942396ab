//! One ACME order: the names' HTTP-01 challenges answered, a new key and its CSR, the
//! certificate chain.

use std::path::Path;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
};

use super::http01::Http01;
use super::{failed, one_line};

/// How long the server gets to validate the challenges, and to issue the certificate.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(500))
    .backoff(1.5)
    .timeout(Duration::from_secs(90));

/// A certificate chain (PEM, the relay's certificate first) and its private key (PEM).
pub(crate) struct Issued {
    pub chain: String,
    pub key: String,
}

/// Orders a certificate for `names` (all of them, one certificate).
pub(super) async fn issue(
    account: &Account,
    names: &[String],
    root: &Path,
) -> Result<Issued, String> {
    let mut http01 = Http01::start(root).await?;
    let result = validate_and_finalize(account, names, &mut http01).await;
    let where_ = http01.describe();
    http01.stop();
    result.map_err(|e| match e {
        Failure::Validation(reason) => format!("{reason} (HTTP-01 {where_})"),
        Failure::Other(reason) => reason,
    })
}

enum Failure {
    /// The server could not validate a name: where the answers were matters.
    Validation(String),
    Other(String),
}

async fn validate_and_finalize(
    account: &Account,
    names: &[String],
    http01: &mut Http01,
) -> Result<Issued, Failure> {
    let api = |step: &'static str| move |e: instant_acme::Error| Failure::Other(failed(step, &e));
    let identifiers: Vec<Identifier> = names.iter().cloned().map(Identifier::Dns).collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(api("new order"))?;

    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization.map_err(api("authorization"))?;
        let name = authorization.identifier().to_string();
        match authorization.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(Failure::Other(format!(
                    "authorization for {name} is {other:?}"
                )));
            }
        }
        let mut challenge = authorization
            .challenge(ChallengeType::Http01)
            .ok_or_else(|| Failure::Other(format!("no HTTP-01 challenge offered for {name}")))?;
        let key_authorization = challenge.key_authorization();
        http01
            .add(&challenge.token, key_authorization.as_str())
            .map_err(Failure::Other)?;
        challenge
            .set_ready()
            .await
            .map_err(|e| Failure::Validation(format!("{name}: {}", one_line(&e))))?;
    }

    let status = order.poll_ready(&POLL).await.map_err(api("order"))?;
    if status != OrderStatus::Ready {
        return Err(Failure::Validation(invalid_reason(&mut order).await));
    }

    let key = rcgen::KeyPair::generate().map_err(|e| Failure::Other(format!("new key: {e}")))?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())
        .map_err(|e| Failure::Other(format!("certificate request: {e}")))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .map_err(|e| Failure::Other(format!("certificate request: {e}")))?;
    order
        .finalize_csr(csr.der())
        .await
        .map_err(api("finalization"))?;
    let chain = order
        .poll_certificate(&POLL)
        .await
        .map_err(api("certificate download"))?;
    Ok(Issued {
        chain,
        key: key.serialize_pem(),
    })
}

/// Why an order did not become ready: the first failed challenge's error, else the order's.
async fn invalid_reason(order: &mut instant_acme::Order) -> String {
    let mut authorizations = order.authorizations();
    while let Some(Ok(authorization)) = authorizations.next().await {
        let name = authorization.identifier().to_string();
        for challenge in &authorization.challenges {
            if let Some(problem) = &challenge.error {
                return format!("{name}: {}", one_line(problem));
            }
        }
    }
    match &order.state().error {
        Some(problem) => one_line(problem),
        None => format!("the order is {:?}", order.state().status),
    }
}
