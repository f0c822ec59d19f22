//! Writes of questions: guidance requests from files, dialogs read from screens, questions
//! of agents that report `waiting`; their answers, resolutions and withdrawals.

use super::super::Result;
use super::Tx;
use rusqlite::{params, OptionalExtension};

impl Tx<'_> {
    /// Records a guidance request unless the same (agent, question) is already pending.
    pub fn add_guidance(
        &self,
        run_id: &str,
        agent: &str,
        root: &str,
        question: &str,
        context: &str,
        now: i64,
    ) -> Result<Option<i64>> {
        self.add_question(run_id, agent, root, question, context, "file", now)
    }

    /// Records a dialog read from an agent's screen as a question (source `screen`, no
    /// signal directory: it is answered in the pane) unless the same one is pending.
    pub fn add_screen_question(
        &self,
        run_id: &str,
        agent: &str,
        question: &str,
        context: &str,
        now: i64,
    ) -> Result<Option<i64>> {
        self.add_question(run_id, agent, "", question, context, "screen", now)
    }

    #[allow(clippy::too_many_arguments)]
    fn add_question(
        &self,
        run_id: &str,
        agent: &str,
        root: &str,
        question: &str,
        context: &str,
        source: &str,
        now: i64,
    ) -> Result<Option<i64>> {
        let exists = self
            .tx
            .query_row(
                "SELECT id FROM guidance_requests WHERE run_id = ?1 AND agent = ?2 AND question = ?3
                 AND status = 'pending'",
                params![run_id, agent, question],
                |r| r.get::<_, i64>(0),
            )
            .optional()?;
        if exists.is_some() {
            return Ok(None);
        }
        self.insert_pending(run_id, agent, root, question, context, now, source)
            .map(Some)
    }

    /// A screen question whose dialog left the screen (answered in the pane, or the agent
    /// moved on): no longer pending, and no answer recorded.
    pub fn resolve_screen_question(&self, id: i64, now: i64) -> Result<()> {
        self.tx.execute(
            "UPDATE guidance_requests SET status = 'resolved', answered_at = ?1
             WHERE id = ?2 AND status = 'pending' AND source = 'screen'",
            params![now, id],
        )?;
        Ok(())
    }

    /// A question an agent asks at its prompt (`source` = signal | screen), answered by
    /// typing into its pane: at most one pending per agent (the first one stands).
    pub fn add_pane_question(
        &self,
        run_id: &str,
        agent: &str,
        source: &str,
        question: &str,
        context: &str,
        now: i64,
    ) -> Result<Option<i64>> {
        let exists = self
            .tx
            .query_row(
                "SELECT id FROM guidance_requests WHERE run_id = ?1 AND agent = ?2
                 AND source <> 'file' AND status = 'pending'",
                params![run_id, agent],
                |r| r.get::<_, i64>(0),
            )
            .optional()?;
        if exists.is_some() {
            return Ok(None);
        }
        self.insert_pending(run_id, agent, "", question, context, now, source)
            .map(Some)
    }

    /// A new pending question; its id.
    #[allow(clippy::too_many_arguments)]
    fn insert_pending(
        &self,
        run_id: &str,
        agent: &str,
        root: &str,
        question: &str,
        context: &str,
        now: i64,
        source: &str,
    ) -> Result<i64> {
        self.tx.execute(
            "INSERT INTO guidance_requests(run_id, agent, root, question, context, status,
                                           created_at, source)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7)",
            params![run_id, agent, root, question, context, now, source],
        )?;
        Ok(self.tx.last_insert_rowid())
    }

    /// A pane question nobody needs to answer any more (the agent moved on or is gone).
    pub fn withdraw_question(&self, id: i64, now: i64) -> Result<bool> {
        let n = self.tx.execute(
            "UPDATE guidance_requests SET status = 'withdrawn', answered_at = ?1
             WHERE id = ?2 AND status = 'pending'",
            params![now, id],
        )?;
        Ok(n > 0)
    }

    pub fn answer_guidance(&self, id: i64, answer: &str, now: i64) -> Result<()> {
        self.tx.execute(
            "UPDATE guidance_requests SET status = 'answered', answer = ?1, answered_at = ?2 WHERE id = ?3",
            params![answer, now, id],
        )?;
        Ok(())
    }
}
