//! Admin requests that block (fsync of the metadata log, opening new
//! partition logs) must not hold a runtime worker thread: on a runtime with
//! a single worker, other tasks keep running while a large CreateTopics is
//! in progress.

use crate::handlers::{dispatch, Reply};
use crate::test_support::{request, test_state};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[tokio::test(flavor = "current_thread")]
async fn create_topics_leaves_the_worker_thread_free() {
    let (_dir, state) = test_state();
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("wide")))
        .with_num_partitions(64)
        .with_replication_factor(1);
    let body = RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![topic]));
    let other_task_ran = Arc::new(AtomicBool::new(false));
    let flag = other_task_ran.clone();
    tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
    // On the old code the whole creation ran inside dispatch, on this
    // runtime's only thread, before the spawned task could run.
    let reply = dispatch(&state, request(ApiKey::CreateTopics, 7, body), "/127.0.0.1").await;
    let Reply::Later(response) = reply else {
        panic!("CreateTopics must be answered from the blocking pool")
    };
    let ResponseKind::CreateTopics(response) = response.await else {
        panic!("not a CreateTopics response")
    };
    assert_eq!(response.topics[0].error_code, 0);
    assert!(other_task_ran.load(Ordering::SeqCst));
}
