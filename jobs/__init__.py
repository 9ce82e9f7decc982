"""Job store, state machine, controller and recovery, spot policies, scheduler (built by the jobs issue)."""
