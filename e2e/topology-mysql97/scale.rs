//! A scale-up on the XCOM stack that restarts nobody. A group of two started from a my.cnf that
//! names two members (seeds and XCom's allowlist); the spec then says three, and the third
//! member's pod starts from a my.cnf that names three. The operator's pods are no longer
//! replaced for a scale (the members are outside the configuration hash), so the two members'
//! XCom would refuse the new member: that is shown first on the real server. Then the operator's
//! ticks set the two members' seeds and allowlist while their Group Replication runs
//! (`topology::membership`), and join the new member; neither of the two restarted.

use std::time::{Duration, Instant};

use innodb_operator::topology::membership;
use innodb_operator::topology::ops::Operation;

use crate::group::{Group, online_as};
use crate::{STEP, Timings};

/// How long a refused join may take to fail.
const REFUSED_LIMIT: Duration = Duration::from_secs(150);

/// Members 0 and 1 ONLINE (0 primary) in a group started with `instances: 2`; member 2 added.
pub async fn scale_up_by_one(g: &mut Group, t: &mut Timings) {
    let uptime = async |g: &Group, o: u32| -> u64 {
        g.root_query(o, "SELECT VARIABLE_VALUE FROM performance_schema.global_status WHERE VARIABLE_NAME = 'Uptime'")
            .await[0]
            .as_deref()
            .and_then(|v| v.parse().ok())
            .expect("Uptime")
    };
    let before = [uptime(g, 0).await, uptime(g, 1).await];
    let two = membership::wanted(&g.input());
    g.built.scale_to(3);
    let three = membership::wanted(&g.input());
    assert_ne!(
        two, three,
        "the spec's three members are named in other settings"
    );
    let source = g.built.pod_source();
    let (name, fqdn) = {
        let m = g.members.member(1);
        (m.name.replace("-1", "-2"), m.fqdn.replace("-1.", "-2."))
    };
    tokio::task::block_in_place(|| {
        g.members
            .add_member(2, name.clone(), fqdn, source)
            .and_then(|()| g.members.set_hosts(&g.members.member_hosts()))
            .and_then(|()| g.members.start(2))
            .unwrap_or_else(|e| panic!("{name} started: {e}"))
    });
    g.wait_until("member 2 answers", STEP, |o| o.state(2).is_some())
        .await;
    let said = |o: &innodb_operator::topology::Observed, m: u32| {
        let s = o.state(m).expect("answers");
        (s.group_seeds.clone(), s.ip_allowlist.clone())
    };
    let observed = g.observe().await;
    assert_eq!(
        said(&observed, 0),
        (Some(two.seeds.clone()), two.allowlist.clone()),
        "member 0 says what its my.cnf said"
    );
    assert_eq!(
        said(&observed, 2),
        (Some(three.seeds.clone()), three.allowlist.clone()),
        "the new member's my.cnf names three members"
    );

    // Without the settings: the members' XCom refuses the new member.
    let started = Instant::now();
    let refused = tokio::time::timeout(
        REFUSED_LIMIT,
        g.run(Operation::Join {
            member: 2,
            restart: false,
        }),
    )
    .await
    .expect("a refused join ends");
    let took = started.elapsed();
    eprintln!(
        "XCOM scale-up: member 2's join with the members' old allowlist -> {refused:?} after {took:?}"
    );
    assert!(refused.is_err(), "the old allowlist refuses member 2");
    assert!(
        g.members
            .member(0)
            .logs()
            .contains("not in the IP allowlist"),
        "member 0's XCom says why it refused"
    );
    t.add("XCOM scale-up: a join refused by the old allowlist", took);

    // The operator's ticks: the settings first, then member 2 joins.
    let started = Instant::now();
    let ran = g
        .converge(
            "member 2 an ONLINE secondary of 3",
            Duration::from_secs(180),
            |o| online_as(o, 2, false, 3),
        )
        .await;
    t.add(
        "XCOM scale-up: settings set, member 2 ONLINE",
        started.elapsed(),
    );
    eprintln!("XCOM scale-up: the ticks ran {ran:?}");
    let observed = g.observe().await;
    for m in 0..3 {
        assert_eq!(
            said(&observed, m),
            (Some(three.seeds.clone()), three.allowlist.clone()),
            "member {m} names the three members"
        );
    }
    let after = [uptime(g, 0).await, uptime(g, 1).await];
    for m in 0..2 {
        assert!(
            after[m] >= before[m] + started.elapsed().as_secs().saturating_sub(1),
            "member {m}'s mysqld kept running (uptime {} s before, {} s after)",
            before[m],
            after[m]
        );
    }
    g.assert_believes_truth(&observed, 2).await;
}
