"""Domain model shared by the gateway and runtime processes; depends on nothing of ours."""
