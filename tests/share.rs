//! Two instances sharing inboxes under load, for a CI-sized minute:
//! neither deletes nor miscounts the other's canaries (tests/common/share.rs
//! says exactly what is checked; the benchmark's `share` part runs it for
//! 5 minutes). Its own binary: it holds the stack's queue at the end.

mod common;

#[test]
fn two_instances_on_the_same_inboxes_never_consume_or_count_each_others_canaries() {
    let r = common::share::run(60);
    for (n, (sent, delivered, in_flight, foreign)) in r.counts.iter().enumerate() {
        println!(
            "instance {n}: {sent} sent, {delivered} delivered, {in_flight} in flight (held), {foreign} foreign seen"
        );
    }
    println!(
        "{} held in the queue at the end; kept inboxes, (foreign counted, the other's deliveries): {:?}",
        r.held, r.foreign_kept
    );
}
