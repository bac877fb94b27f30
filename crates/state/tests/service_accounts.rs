//! Service accounts on PostgreSQL, through two handles over two connection pools (two
//! replicas): what one creates, rotates or revokes holds on the other's next request, and two
//! replicas creating the same account at once make exactly one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::SystemTime;

use tracegate_identity::ServiceAccountsConfig;
use tracegate_identity::service_accounts::{NewAccount, ServiceAccounts};
use tracegate_state::service_accounts::PgServiceAccounts;
use tracegate_state::testing::TestDb;

fn any_role(_: &str) -> Result<(), String> {
    Ok(())
}

async fn replicas(db: &TestDb) -> (Arc<ServiceAccounts>, Arc<ServiceAccounts>) {
    let cfg = ServiceAccountsConfig { admin_groups: vec!["admins".into()], ..ServiceAccountsConfig::default() };
    let a = ServiceAccounts::with_store(cfg.clone(), Box::new(PgServiceAccounts::new(db.pool().await)));
    let b = ServiceAccounts::with_store(cfg, Box::new(PgServiceAccounts::new(db.pool().await)));
    (Arc::new(a), Arc::new(b))
}

fn account(name: &str) -> NewAccount {
    NewAccount { name: name.into(), roles: vec!["engineer".into()], ..NewAccount::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_rotate_revoke_through_one_replica_hold_on_the_other() {
    let Some(db) = TestDb::create().await else { return };
    let (a, b) = replicas(&db).await;
    let issued = a.create(&account("ci"), "admin", &any_role, SystemTime::now()).await.unwrap();
    let p = b.authenticate(&issued.key).await.unwrap();
    assert_eq!(p.subject, "ci", "a key created through A is accepted by B");

    let rotated = b.rotate("ci", None, "admin", SystemTime::now()).await.unwrap();
    assert_eq!(a.authenticate(&rotated.key).await.unwrap().subject, "ci", "a key rotated in through B is accepted by A");

    b.revoke("ci", Some(&issued.key_id), "admin", SystemTime::now()).await.unwrap();
    assert!(a.authenticate(&issued.key).await.is_err(), "a key revoked through B is refused by A on its next request");
    assert!(a.authenticate(&rotated.key).await.is_ok(), "revoking one key leaves the other");

    a.revoke("ci", None, "admin", SystemTime::now()).await.unwrap();
    assert!(b.authenticate(&rotated.key).await.is_err(), "an account revoked through A is refused by B");
    assert_eq!(a.list().await.unwrap().len(), 1);
    assert_eq!(b.list().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_creating_one_account_at_once_make_exactly_one() {
    let Some(db) = TestDb::create().await else { return };
    let (a, b) = replicas(&db).await;
    for round in 0..8 {
        let name = format!("svc{round}");
        let (na, nb) = (account(&name), account(&name));
        let (a2, b2) = (a.clone(), b.clone());
        let ta = tokio::spawn(async move { a2.create(&na, "admin", &any_role, SystemTime::now()).await });
        let tb = tokio::spawn(async move { b2.create(&nb, "admin", &any_role, SystemTime::now()).await });
        let (ra, rb) = (ta.await.unwrap(), tb.await.unwrap());
        assert_eq!(usize::from(ra.is_ok()) + usize::from(rb.is_ok()), 1, "round {round}: {:?} / {:?}", ra.as_ref().err(), rb.as_ref().err());
        let winner = ra.or(rb).unwrap();
        assert_eq!(b.authenticate(&winner.key).await.unwrap().subject, name);
        assert_eq!(a.authenticate(&winner.key).await.unwrap().subject, name);
    }
    assert_eq!(a.list().await.unwrap().len(), 8);
}

#[tokio::test]
async fn an_unreachable_database_refuses_every_key() {
    let Some(db) = TestDb::create().await else { return };
    let (a, _) = replicas(&db).await;
    let issued = a.create(&account("ci"), "admin", &any_role, SystemTime::now()).await.unwrap();
    db.allow_connections(false).await;
    db.terminate_connections().await;
    assert!(a.authenticate(&issued.key).await.is_err(), "fails closed while the state is unreachable");
    db.allow_connections(true).await;
    assert_eq!(a.authenticate(&issued.key).await.unwrap().subject, "ci", "recovers without a restart");
}
