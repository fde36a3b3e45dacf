//! Verify's connections: one per side per job, each with the same output settings so a value
//! has the same text form on both servers, and read-only.

use std::sync::Arc;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

use crate::pg::{Endpoint, Side};

use super::VerifyError;

/// Settings that make every type's text output identical on both servers. `search_path`
/// is `pg_catalog` so `format_type`, `regclass` and the `pg_get_*def` functions qualify
/// every user name the same way, and no user-defined operator can stand in for a built-in.
const SESSION_SQL: &str = "
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
SET extra_float_digits = 3;
SET TimeZone = 'UTC';
SET bytea_output = 'hex';
SET lc_monetary = 'C';
SET search_path = pg_catalog;
SET default_transaction_read_only = on;
SELECT set_config('jit', 'off', false) WHERE current_setting('jit', true) IS NOT NULL;
";

/// One connection to one side.
pub(crate) struct Conn {
    pub client: Client,
    pub ep: Arc<Endpoint>,
    /// `server_version_num`.
    pub version: i32,
}

impl Conn {
    pub async fn connect(ep: &Arc<Endpoint>) -> Result<Conn, VerifyError> {
        let client = ep.connect().await?;
        client
            .batch_execute(SESSION_SQL)
            .await
            .map_err(|e| ep.query_error("setting up the verify session", &e))?;
        let version = ep.version_num(&client).await?;
        Ok(Conn {
            client,
            ep: ep.clone(),
            version,
        })
    }

    pub fn side(&self) -> Side {
        self.ep.side
    }

    pub async fn query(
        &self,
        context: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, VerifyError> {
        self.client
            .query(sql, params)
            .await
            .map_err(|e| VerifyError::Pg(self.ep.query_error(context, &e)))
    }

    pub async fn query_one(
        &self,
        context: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, VerifyError> {
        self.client
            .query_one(sql, params)
            .await
            .map_err(|e| VerifyError::Pg(self.ep.query_error(context, &e)))
    }
}

/// A connection to each side; a chunk is read on both at the same time.
pub(crate) struct Pair {
    pub src: Conn,
    pub tgt: Conn,
}

impl Pair {
    pub async fn connect(src: &Arc<Endpoint>, tgt: &Arc<Endpoint>) -> Result<Pair, VerifyError> {
        let (src, tgt) = tokio::try_join!(Conn::connect(src), Conn::connect(tgt))?;
        Ok(Pair { src, tgt })
    }

    pub fn side(&self, side: Side) -> &Conn {
        match side {
            Side::Source => &self.src,
            Side::Target => &self.tgt,
        }
    }
}
