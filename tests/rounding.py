"""How much float32 rounding alone moves a network's outputs: the yardstick of the cross-framework tests.

Two float32 implementations of the same network (minicnn, onnxruntime,
PyTorch) sum in other orders, so their logits differ by about as much as
either differs from exact arithmetic. ``float32_noise`` measures that on the
spot, as the largest difference between the network in float32 and the same
weights in float64; ``tolerance`` allows 4x it (two implementations, each
with its own rounding, and margin), never less than 1e-5. A mapping error (a
wrong padding, epsilon, window or weight layout) moves logits by orders of
magnitude more.
"""

import numpy as np


def float32_noise(net, x):
    """max |net(x) in float32 - net(x) in float64| for a float32 minicnn network (left as it was)."""
    y32 = net(x)
    state = net.state_dict()
    net.to(dtype=np.float64)
    y64 = net(x.astype(np.float64))
    net.to(dtype=np.float32)
    net.load_state_dict(state)
    return float(np.abs(y32 - y64).max())


def tolerance(net, x):
    return max(1e-5, 4 * float32_noise(net, x))
