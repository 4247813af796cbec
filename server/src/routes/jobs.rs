//! `/v1/jobs/{id}`: an async job's state and, once it succeeded, its images; `DELETE` cancels it.

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};

use crate::{
    deliver::Delivery,
    error::ApiError,
    extract::ApiPath,
    ledger::{JobView, Scope, no_such_job},
};

pub async fn get(
    State(delivery): State<Delivery>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let view = delivery
        .ledger()
        .view(&id, &Scope::from_headers(&headers))
        .await?
        .ok_or_else(no_such_job)?;
    answer(&delivery, &view).await
}

pub async fn cancel(
    State(delivery): State<Delivery>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let view = delivery
        .ledger()
        .cancel(&id, &Scope::from_headers(&headers))
        .await?
        .ok_or_else(no_such_job)?;
    answer(&delivery, &view).await
}

async fn answer(delivery: &Delivery, view: &JobView) -> Result<Response, ApiError> {
    let document = delivery.ledger().document_of(view).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from(document),
    )
        .into_response())
}
