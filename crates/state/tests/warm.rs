//! Warm connections ([`tracegate_state::warm`]) on a real PostgreSQL: a connection that just
//! answered is handed out again, skipping the pool's checks, until it has been idle for `KEEP`;
//! no more than `max` are kept.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tracegate_state::sqlx;
use tracegate_state::testing::TestDb;
use tracegate_state::warm::{Taken, Warm, KEEP};

async fn pid(t: &mut Taken) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *t.conn).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_connection_is_handed_out_again_until_it_goes_cold() {
    let Some(db) = TestDb::create().await else { return };
    let warm = Warm::new(db.pool().await, 2);
    let mut first = warm.take().await.unwrap();
    assert!(!first.kept, "nothing kept yet: from the pool");
    let p1 = pid(&mut first).await;
    warm.keep(first);
    let mut again = warm.take().await.unwrap();
    assert!(again.kept);
    assert_eq!(pid(&mut again).await, p1, "the same backend, without the pool");

    // Three at once, two kept: the third goes back to the pool.
    let (mut b, mut c) = (warm.take().await.unwrap(), warm.take().await.unwrap());
    assert!(!b.kept && !c.kept);
    let pids = [pid(&mut again).await, pid(&mut b).await, pid(&mut c).await];
    warm.keep(again);
    warm.keep(b);
    warm.keep(c);
    let (mut x, mut y, z) = (warm.take().await.unwrap(), warm.take().await.unwrap(), warm.take().await.unwrap());
    assert!(x.kept && y.kept && !z.kept, "{} {} {}", x.kept, y.kept, z.kept);
    let (px, py) = (pid(&mut x).await, pid(&mut y).await);
    assert!(pids[..2].contains(&px) && pids[..2].contains(&py) && px != py, "the first two kept: {pids:?} {px} {py}");
    warm.keep(x);
    drop((y, z));

    // Idle for KEEP: cold, back to the pool, and the next comes from the pool.
    tokio::time::sleep(KEEP + std::time::Duration::from_millis(50)).await;
    let cold = warm.take().await.unwrap();
    assert!(!cold.kept);
}
