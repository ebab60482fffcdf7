//! Workloads: clients that generate operations against the cluster and
//! record them in the history. `register` today; `kubernetes` and `watch`
//! are planned (issue 5).

pub mod register;
