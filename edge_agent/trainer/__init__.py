"""Workstation side: train a teacher, distil a student, evaluate, export a bundle. The only torch user."""

from edge_agent.errors import require

require("torch", "trainer", "the trainer")
