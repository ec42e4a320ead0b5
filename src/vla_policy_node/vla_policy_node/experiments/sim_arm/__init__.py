"""The simulated arm put to work: demonstrations, training, closed-loop evaluation, grounding diagnostic."""
