//! The actions on a job besides cancel: restart (a failed job's operation again) and resume
//! (a job suspended at a manual action), for an item's job or a recovery plan's.

use super::{JobState, Simulator};
use crate::backend::{Backend, BackendError, ServiceError};

fn not_allowed(message: String) -> BackendError {
    BackendError::Service(ServiceError {
        code: "OperationNotAllowed".into(),
        message,
        possible_causes: String::new(),
        recommended_action: String::new(),
    })
}

impl Simulator {
    /// Restarts a failed job: the same operation again, as a new job, whose id is returned.
    pub async fn restart_job(&self, id: &str) -> Result<String, BackendError> {
        if let Some(restarted) = self.restart_plan_job(id) {
            return restarted.map(|job| job.id);
        }
        let (vm, request) = {
            let (st, _) = self.settled();
            let job = st
                .jobs
                .get(id)
                .ok_or_else(|| BackendError::UnknownJob(id.to_string()))?;
            if job.info.state != JobState::Failed {
                return Err(not_allowed(format!(
                    "Job {id} is {}: only a failed job can be restarted.",
                    job.info.state
                )));
            }
            let mut request = job.request.clone();
            request.key = None;
            (job.info.vm.clone(), request)
        };
        self.start(&vm, &request).await.map(|job| job.id)
    }

    /// Resumes a job suspended at a manual action of its recovery plan; an item's job never
    /// suspends.
    pub fn resume_suspended(&self, id: &str) -> Result<(), BackendError> {
        if self.plan_job(id).is_some() {
            return self.resume_plan_job(id);
        }
        let state = {
            let (st, now) = self.settled();
            st.view(id, now)
                .ok_or_else(|| BackendError::UnknownJob(id.to_string()))?
                .state
        };
        Err(not_allowed(format!(
            "Job {id} is {state}, not Suspended: only a job waiting at a manual action can be resumed."
        )))
    }
}
