"""Fixed-shape pieces of the training step replayed as CUDA graphs, forward and backward.

At our scene sizes a training step is bound by the host issuing a few hundred small kernels, not by
the GPU running them. A CUDA graph records a piece's kernels once and replays them all with one
launch; ``torch.cuda.make_graphed_callables`` records a function's forward pass and its backward
pass as two graphs behind one autograd node, so a replay takes part in ``loss.backward()`` like
any operation. A recording holds for fixed input shapes, fixed Python-side choices and no host
reads inside the piece: the caller names its choices in a key, and each key (with the inputs'
shapes) gets a recording of its own, made the first time it is met.

A replay writes into its recording's own buffers: its outputs (and the gradients its backward
returns) must be used, or copied, before the same recording replays again. The training loop does
so within a step. Off the GPU, with gradients off, or once a recording has failed, the function
simply runs (the same operations, one launch each).
"""
import contextlib
import gc
from collections import OrderedDict
from typing import Callable, Hashable, Optional, Sequence

import torch

from utils.system_utils import print_once


class GraphedCalls:
    def __init__(self, name: str, max_recordings: int = 8):
        """name: what is graphed, for the notice when a recording fails. max_recordings: how many
        are kept (least recently used go first): each holds its intermediate tensors for good."""
        self.name = name
        self.max_recordings = max_recordings
        self.recordings_made = 0
        self.failure: Optional[str] = None    # set once a recording failed: the function runs unrecorded from then on
        self._recordings: "OrderedDict[Hashable, Callable]" = OrderedDict()

    def __call__(self, key: Hashable, build: Callable[[], Callable], tensors: Sequence[torch.Tensor]):
        """build()(*tensors), from the recording for key and the tensors' shapes, dtypes and
        requires_grad flags. build() returns the function (tensors -> a tuple or dict of tensors,
        no host reads); it is called only to record, or to run it unrecorded. An nn.Module is
        recorded with its parameters as inputs (their gradients reach .grad); make_graphed_callables
        replaces a recorded module's forward, so build() must return a new one each time."""
        if not self._recordable(tensors):
            return build()(*tensors)
        full_key = (key, tuple((tuple(t.shape), t.dtype, t.requires_grad, t.device) for t in tensors))
        graphed = self._recordings.get(full_key)
        if graphed is None:
            graphed = self._record(full_key, build(), tensors)
            if graphed is None:
                return build()(*tensors)
        else:
            self._recordings.move_to_end(full_key)
        return graphed(*tensors)

    def clear(self) -> None:
        """Drop every recording (their memory goes back to PyTorch's allocator)."""
        while self._recordings:
            self._drop_oldest()
        # A recording lives in reference cycles (make_graphed_callables makes an autograd
        # Function class per recording): without a collection its buffers would stay allocated.
        gc.collect()

    def _drop_oldest(self) -> None:
        """Let the least recently used recording go; its memory returns at the next collection."""
        _, graphed = self._recordings.popitem(last=False)
        if isinstance(graphed, torch.nn.Module):
            graphed.__dict__.pop("forward", None)   # the recorded forward refers back to the module

    def _recordable(self, tensors: Sequence[torch.Tensor]) -> bool:
        return (self.failure is None and torch.is_grad_enabled() and len(tensors) > 0
                and all(t.is_cuda for t in tensors) and not torch.cuda.is_current_stream_capturing()
                and not torch.is_autocast_enabled("cuda") and not torch.is_anomaly_enabled())

    def _record(self, key: Hashable, fn: Callable, tensors: Sequence[torch.Tensor]) -> Optional[Callable]:
        # Room first: the recording let go is collected (below) before the new one allocates its
        # buffers, so the two never hold memory at once, and one collection serves both (a full
        # collection of a training process costs tens of milliseconds, and a run records often:
        # the network's rows change bucket as the gate learns and densification runs).
        while len(self._recordings) >= self.max_recordings:
            self._drop_oldest()
        # Recording runs fn a few times on these copies first (warm-up), then records it.
        samples = tuple(t.detach().clone().requires_grad_(t.requires_grad) for t in tensors)
        try:
            with _no_automatic_collection():
                graphed = torch.cuda.make_graphed_callables(fn, samples, allow_unused_input=True)
        except (RuntimeError, AssertionError) as err:
            _release_random_generator(tensors[0].device)
            self.failure = _first_cause(err)
            self.clear()
            print_once(f"CUDA graphs off for the {self.name} ({self.failure}): it runs op by op.")
            return None
        self._recordings[key] = graphed
        self.recordings_made += 1
        return graphed


@contextlib.contextmanager
def _no_automatic_collection():
    """Python's cyclic garbage collector held off while a recording is made. Recordings live in
    reference cycles, so one that was let go (a GraphedCalls of an earlier run in the same
    process) is freed whenever the collector happens to run; if that is during a capture, its
    graph's destruction is an operation a capturing stream forbids, and the capture fails ("a
    previous error during capture"; seen on the H200 when a CUDA test ran after trainings in one
    process). So: collect first (which also frees the recording _record just let go), then no
    automatic collection until the recording is made."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _first_cause(err: BaseException) -> str:
    """The error that broke a recording, in one line: when an operation inside the capture fails,
    ending the capture raises a second, vaguer error ("a previous error during capture") on top."""
    while err.__context__ is not None and isinstance(err.__context__, (RuntimeError, AssertionError)):
        err = err.__context__
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


def _release_random_generator(device: torch.device) -> None:
    """A capture that fails is never closed for the device's default random generator, which then
    refuses every later draw outside a capture ("Offset increment outside graph capture"). Give it
    a copy of its own state (same seed and offset), outside any capture."""
    generator = torch.cuda.default_generators[device.index if device.index is not None else torch.cuda.current_device()]
    generator.graphsafe_set_state(generator.clone_state())
