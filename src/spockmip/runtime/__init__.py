"""Where and how a job runs: devices, mixed precision and threads; a workflow job's start-up; the code
fingerprint of a script."""
