"""torch's fused Adam with its per-step Python work cut down.

``torch.optim.Adam(fused=True)`` applies a parameter group in one kernel, but its ``step()``
spends about 30 µs of host time per group on bookkeeping (grouping tensors by device, dtype
checks, hooks) before that kernel: with the Gaussians' eight one-tensor groups, about 0.25 ms
a training step, on a loop the host already bounds. ``FusedAdam.step`` makes the same calls to
the same kernel (``torch._fused_adam_``), one per group, with the step counts raised for all
groups in one call, and nothing else. It is a subclass: the state it keeps (``step``,
``exp_avg``, ``exp_avg_sq`` per parameter, created as torch creates them), ``state_dict``, the
models' row edits and ``found_inf`` (utils/loss_check.py) work as with torch's. Plain Adam
only: no amsgrad, maximize, weight decay, capturable or closure.
"""
import torch


class FusedAdam(torch.optim.Adam):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, lr=lr, betas=betas, eps=eps, fused=True)

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            raise ValueError("FusedAdam.step takes no closure.")
        found_inf = getattr(self, "found_inf", None)
        calls, all_steps = [], []
        for group in self.param_groups:
            params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:   # as torch's Adam: a float32 step count on the parameter's device
                    state["step"] = torch.zeros((), dtype=torch.float32, device=param.device)
                    state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                params.append(param)
                grads.append(param.grad)
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                steps.append(state["step"])
            if params:
                calls.append((group, params, grads, exp_avgs, exp_avg_sqs, steps))
                all_steps += steps
        if not calls:
            return None
        torch._foreach_add_(all_steps, 1)
        for group, params, grads, exp_avgs, exp_avg_sqs, steps in calls:
            beta1, beta2 = group["betas"]
            torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, lr=group["lr"], beta1=beta1,
                               beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"], amsgrad=False,
                               maximize=False, grad_scale=None, found_inf=found_inf)
        if found_inf is not None:   # a skipped step is not counted (as torch's)
            torch._foreach_sub_(all_steps, [found_inf] * len(all_steps))
        return None
