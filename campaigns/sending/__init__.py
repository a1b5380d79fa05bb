"""Sending a run's batches: the only place that claims, calls mPaaS and records.

- `job.send` is the RQ job body: it holds a send slot and runs a `Sender`.
- `sender.Sender` runs the caller threads (a `concurrent.futures` pool); it hands out
  `Claim`s and gets `Outcome`s back (`claims.py`), and knows nothing of the database.
- `recorder.RunLedger` does every database write of sending in rounds of one
  transaction: record the outcomes that came back, claim the next due batches.
"""
