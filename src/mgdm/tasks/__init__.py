"""Named image restoration tasks (operators scaled to any image size) and their figures."""

from mgdm.tasks.registry import TASKS, Task, TaskSpec, make_task, scaled_kernel_size

__all__ = ["TASKS", "Task", "TaskSpec", "make_task", "scaled_kernel_size"]
