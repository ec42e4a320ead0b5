"""Meta-World MT1/MT10 tasks with the project's model, trainer and policy: experts, training, evaluation."""
