"""keras_models.py — PyTorch definitions of Keras' MobileNet v1 and ResNets, with Keras semantics.

Independent of initlab's C code: written from keras.applications.mobilenet and
keras.applications.resnet. Every layer carries its Keras name, so weights saved by
`initlab summary --save-weights` (Keras names and layouts) load by name, and outputs can
be recorded per layer. Semantics kept from Keras:
  - TF "same" padding: total = max((out - 1)·s + k - in, 0), before = total // 2, the odd
    extra pixel after (bottom/right), applied with F.pad before an unpadded conv;
  - MobileNet's stride-2 depthwise convs: ZeroPadding2D(((0, 1), (0, 1))) + "valid";
  - BatchNorm: eps 1e-3 (MobileNet, head) or 1.001e-5 (ResNet), moving = 0.99·moving +
    0.01·batch (PyTorch momentum 0.01). PyTorch updates running_var with the unbiased
    batch variance where Keras uses the biased one; the cross-checks compare the moving
    statistics against Keras' rule computed from recorded BN inputs (keras_bn_update).
  - Softmax is left to the loss: the models return logits.

Layouts: Keras conv kernel (kh, kw, cin, cout) <-> torch (cout, cin, kh, kw); depthwise
(kh, kw, C, m) <-> torch (C·m, 1, kh, kw) with output channel c·m + j reading input c;
dense (in, out) <-> torch (out, in).
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MOBILENET_EPS = 1e-3
RESNET_EPS = 1.001e-5
HEAD_EPS = 1e-3
BN_MOMENTUM = 0.99


def tf_same_pads(size, k, s):
    """(before, after) padding of TF "same" for one spatial dimension."""
    out = (size + s - 1) // s
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


class Layer(nn.Module):
    """One Keras layer: kind, input layer names, and an optional torch module."""

    def __init__(self, kind, inputs, module=None, **cfg):
        super().__init__()
        self.kind = kind
        self.inputs = inputs
        self.module = module
        self.cfg = cfg

    def forward(self, *xs, decided=None):
        """decided: for activation and max-pooling layers, another implementation's output
        of this layer (same shape); the kinks of ReLU/ReLU6 and the max's choice follow it
        (see KerasNet.forward)."""
        x = xs[0]
        k, c = self.kind, self.cfg
        if decided is not None and k == "activation" and c["act"] in ("relu", "relu6"):
            decided = decided.reshape(x.shape)
            lo = decided <= 0
            hi = decided >= 6 if c["act"] == "relu6" else torch.zeros_like(lo)
            return torch.where(lo, torch.zeros_like(x), torch.where(hi, torch.full_like(x, 6.0), x))
        if decided is not None and k == "max_pooling2d":
            return _maxpool_as_decided(x, decided, c["k"], c["stride"])
        if k in ("conv2d", "depthwise_conv2d"):
            m = self.module
            t = b = l = r = 0
            if c["padding"] == "same":
                t, b = tf_same_pads(x.shape[2], c["k"], c["stride"])
                l, r = tf_same_pads(x.shape[3], c["k"], c["stride"])
            if t != b or l != r:  # TF's odd extra pixel bottom/right
                x = F.pad(x, (l, r, t, b))
                t = l = 0
            return F.conv2d(x, m.weight, m.bias, m.stride, (t, l), 1, m.groups)
        if k == "zero_padding2d":
            t, b, l, r = c["pad"]
            return F.pad(x, (l, r, t, b))
        if k in ("batch_normalization", "dense", "dropout"):
            return self.module(x)
        if k == "activation":
            a = c["act"]
            if a == "relu":
                return F.relu(x)
            if a == "relu6":
                return F.relu6(x)
            if a == "tanh":
                return torch.tanh(x)
            if a == "sigmoid":
                return torch.sigmoid(x)
            if a == "softsign":
                return F.softsign(x)
            raise ValueError(a)
        if k == "add":
            return xs[0] + xs[1]
        if k == "max_pooling2d":
            return F.max_pool2d(x, c["k"], c["stride"])
        if k == "global_average_pooling2d":
            y = x.mean(dim=(2, 3), keepdim=True)
            return y if c["keepdims"] else y.flatten(1)
        if k == "flatten":
            return x.flatten(1)
        raise ValueError(k)


class KerasNet(nn.Module):
    """A Keras functional graph in build order; `channels` tracks each layer's C."""

    def __init__(self, in_channels=3):
        super().__init__()
        self.layers = nn.ModuleDict()
        self.channels = {"input": in_channels}
        self.last = "input"

    def _add(self, name, kind, inputs, channels, module=None, **cfg):
        if name in self.layers or name == "input":
            raise ValueError(f"duplicate layer {name}")
        self.layers[name] = Layer(kind, inputs, module, **cfg)
        self.channels[name] = channels
        self.last = name
        return name

    # builders: each takes its input layer name and returns the new layer's name
    def conv(self, x, name, filters, k, stride=1, padding="valid", bias=True):
        m = nn.Conv2d(self.channels[x], filters, k, stride, padding=0, bias=bias)
        return self._add(name, "conv2d", [x], filters, m, k=k, stride=stride, padding=padding)

    def depthwise(self, x, name, k, stride, multiplier, padding):
        c = self.channels[x]
        m = nn.Conv2d(c, c * multiplier, k, stride, padding=0, groups=c, bias=False)
        return self._add(name, "depthwise_conv2d", [x], c * multiplier, m, k=k, stride=stride,
                         padding=padding)

    def zeropad(self, x, name, t, b, l, r):
        return self._add(name, "zero_padding2d", [x], self.channels[x], pad=(t, b, l, r))

    def bn(self, x, name, eps, flat=False):
        c = self.channels[x]
        cls = nn.BatchNorm1d if flat else nn.BatchNorm2d
        return self._add(name, "batch_normalization", [x], c,
                         cls(c, eps=eps, momentum=1 - BN_MOMENTUM))

    def act(self, x, name, act):
        return self._add(name, "activation", [x], self.channels[x], act=act)

    def add(self, a, b, name):
        return self._add(name, "add", [a, b], self.channels[a])

    def maxpool(self, x, name, k, stride):
        return self._add(name, "max_pooling2d", [x], self.channels[x], k=k, stride=stride)

    def gap(self, x, name, keepdims=False):
        return self._add(name, "global_average_pooling2d", [x], self.channels[x],
                         keepdims=keepdims)

    def dense(self, x, name, units):
        return self._add(name, "dense", [x], units, nn.Linear(self.channels[x], units))

    def dropout(self, x, name, rate):
        return self._add(name, "dropout", [x], self.channels[x], nn.Dropout(rate))

    def flatten(self, x, name):
        return self._add(name, "flatten", [x], self.channels[x])

    def forward(self, x, record=None, decided=None):
        """Runs the graph on x (N, C, H, W); with record a dict, stores every layer's
        output there by name. Returns the last layer's output (logits).

        decided (optional) maps activation layer names to another implementation's
        outputs and max-pooling layer names to (its input, its output), NCHW. Where ReLU/ReLU6 inputs or max-pool candidates
        sit within rounding of a kink or a tie, two correct implementations may take
        different sides, and the gradient (not unique there) differs; with decided, this
        graph takes the other implementation's side of every kink (zero where it output
        0, 6 where it output 6, else linear) and routes each max to the window element the
        other output equals, while computing every value itself."""
        outs = {"input": x}
        for name, layer in self.layers.items():
            d = decided.get(name) if decided is not None else None
            outs[name] = layer(*(outs[i] for i in layer.inputs), decided=d)
            if record is not None:
                record[name] = outs[name]
        return outs[self.last]


def _maxpool_as_decided(x, decided, k, stride):
    """Max pooling (valid) of x with the window choices of another implementation:
    decided = (its input, its output), NCHW; in each window the element chosen is the first
    (row-major) whose input equals the output, as a max returns one of its candidates."""
    c_in, c_out = decided
    n, c, h, w = x.shape
    cols = F.unfold(x.reshape(n * c, 1, h, w), k, stride=stride)          # (n·c, k·k, L)
    c_cols = F.unfold(c_in.reshape(n * c, 1, h, w).to(x.dtype), k, stride=stride)
    target = c_out.reshape(n * c, 1, -1).to(x.dtype)                       # (n·c, 1, L)
    hit = (c_cols == target).to(torch.int8)
    if not bool(hit.any(dim=1).all()):
        raise ValueError("decided max-pool output is not one of its window's inputs")
    idx = hit.argmax(dim=1, keepdim=True)                                  # first match
    return cols.gather(1, idx).reshape(n, c, c_out.shape[2], c_out.shape[3])


def _head(net, x, head, classes, mobilenet_keras_dropout=None):
    if head == "keras" and mobilenet_keras_dropout is not None:
        x = net.gap(x, "global_average_pooling2d", keepdims=True)
        x = net.dropout(x, "dropout", mobilenet_keras_dropout)
        x = net.conv(x, "conv_preds", classes, 1, padding="same", bias=True)
        return net.flatten(x, "reshape_2")
    x = net.gap(x, "avg_pool")
    if head == "paper":
        x = net.dense(x, "fc1", 256)
        x = net.bn(x, "fc1_bn", HEAD_EPS, flat=True)
        x = net.act(x, "fc1_relu", "relu")
    return net.dense(x, "predictions", classes)


def mobilenet(classes=1000, alpha=1.0, depth_multiplier=1, dropout=1e-3, head="keras",
              channels=3):
    """keras.applications.mobilenet.MobileNet (Keras 3) with logits out."""
    net = KerasNet(channels)
    x = net.conv("input", "conv1", int(32 * alpha), 3, 2, padding="same", bias=False)
    x = net.bn(x, "conv1_bn", MOBILENET_EPS)
    x = net.act(x, "conv1_relu", "relu6")
    spec = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + \
           [(1024, 2), (1024, 1)]
    for i, (f, s) in enumerate(spec, start=1):
        if s == 2:
            x = net.zeropad(x, f"conv_pad_{i}", 0, 1, 0, 1)
        x = net.depthwise(x, f"conv_dw_{i}", 3, s, depth_multiplier,
                          "same" if s == 1 else "valid")
        x = net.bn(x, f"conv_dw_{i}_bn", MOBILENET_EPS)
        x = net.act(x, f"conv_dw_{i}_relu", "relu6")
        x = net.conv(x, f"conv_pw_{i}", int(f * alpha), 1, bias=False, padding="same")
        x = net.bn(x, f"conv_pw_{i}_bn", MOBILENET_EPS)
        x = net.act(x, f"conv_pw_{i}_relu", "relu6")
    _head(net, x, head, classes, mobilenet_keras_dropout=dropout)
    return net


def resnet(depth=50, classes=1000, head="keras", width=64, channels=3):
    """keras.applications.resnet.ResNet50 (v1) and the basic-block ResNet-18/34 with the
    same stem and names (stride on the first conv of a block, projection shortcut where
    the shape changes)."""
    blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}[depth]
    bottleneck = depth == 50
    eps = RESNET_EPS
    net = KerasNet(channels)
    x = net.zeropad("input", "conv1_pad", 3, 3, 3, 3)
    x = net.conv(x, "conv1_conv", width, 7, 2)
    x = net.bn(x, "conv1_bn", eps)
    x = net.act(x, "conv1_relu", "relu")
    x = net.zeropad(x, "pool1_pad", 1, 1, 1, 1)
    x = net.maxpool(x, "pool1_pool", 3, 2)
    for s, n in enumerate(blocks):
        f = width << s
        out = 4 * f if bottleneck else f
        for b in range(1, n + 1):
            p = f"conv{s + 2}_block{b}"
            stride = 2 if (b == 1 and s > 0) else 1
            if b == 1 and (stride != 1 or net.channels[x] != out):
                sc = net.conv(x, p + "_0_conv", out, 1, stride)
                sc = net.bn(sc, p + "_0_bn", eps)
            else:
                sc = x
            if bottleneck:
                y = net.conv(x, p + "_1_conv", f, 1, stride)
                y = net.bn(y, p + "_1_bn", eps)
                y = net.act(y, p + "_1_relu", "relu")
                y = net.conv(y, p + "_2_conv", f, 3, 1, padding="same")
                y = net.bn(y, p + "_2_bn", eps)
                y = net.act(y, p + "_2_relu", "relu")
                y = net.conv(y, p + "_3_conv", out, 1)
                y = net.bn(y, p + "_3_bn", eps)
            else:
                y = net.conv(x, p + "_1_conv", f, 3, stride, padding="same")
                y = net.bn(y, p + "_1_bn", eps)
                y = net.act(y, p + "_1_relu", "relu")
                y = net.conv(y, p + "_2_conv", f, 3, 1, padding="same")
                y = net.bn(y, p + "_2_bn", eps)
            y = net.add(sc, y, p + "_add")
            x = net.act(y, p + "_out", "relu")
    _head(net, x, head, classes)
    return net


def build(name, classes=1000, head="keras", alpha=1.0, depth_multiplier=1, dropout=1e-3,
          width=64, channels=3):
    if name == "mobilenet":
        return mobilenet(classes, alpha, depth_multiplier, dropout, head, channels)
    if name in ("resnet18", "resnet34", "resnet50"):
        return resnet(int(name[6:]), classes, head, width, channels)
    raise ValueError(f"no PyTorch definition of {name}")


# ---- Keras names and layouts ------------------------------------------------------------

def _param_map(net):
    """Keras weight name -> (torch tensor, kind) for every parameter and BN statistic."""
    out = {}
    for name, layer in net.layers.items():
        m = layer.module
        if layer.kind == "conv2d":
            out[f"{name}/kernel"] = (m.weight, "conv")
            if m.bias is not None:
                out[f"{name}/bias"] = (m.bias, "vec")
        elif layer.kind == "depthwise_conv2d":
            out[f"{name}/depthwise_kernel"] = (m.weight, "depthwise")
        elif layer.kind == "dense":
            out[f"{name}/kernel"] = (m.weight, "dense")
            out[f"{name}/bias"] = (m.bias, "vec")
        elif layer.kind == "batch_normalization":
            out[f"{name}/gamma"] = (m.weight, "vec")
            out[f"{name}/beta"] = (m.bias, "vec")
            out[f"{name}/moving_mean"] = (m.running_mean, "vec")
            out[f"{name}/moving_variance"] = (m.running_var, "vec")
    return out


def keras_to_torch(arr, kind, torch_shape):
    a = torch.from_numpy(np.ascontiguousarray(arr))
    if kind == "conv":
        return a.permute(3, 2, 0, 1).contiguous()
    if kind == "depthwise":
        kh, kw, c, m = a.shape
        return a.reshape(kh, kw, c * m).permute(2, 0, 1).unsqueeze(1).contiguous()
    if kind == "dense":
        return a.t().contiguous()
    return a.reshape(torch_shape)


def torch_to_keras(t, kind, keras_shape=None):
    """A torch parameter (or its gradient) in the Keras layout, as numpy."""
    t = t.detach()
    if kind == "conv":
        return t.permute(2, 3, 1, 0).contiguous().numpy()
    if kind == "depthwise":
        kh, kw, c, m = keras_shape
        return t.squeeze(1).permute(1, 2, 0).reshape(kh, kw, c, m).contiguous().numpy()
    if kind == "dense":
        return t.t().contiguous().numpy()
    return t.contiguous().numpy()


def keras_names(net):
    """The Keras weight names of net, in build order."""
    return list(_param_map(net))


def load_keras_weights(net, tensors):
    """Copies tensors (dict Keras name -> numpy array in Keras layout) into net. Every
    parameter must be present with a matching shape; extra tensors are an error too."""
    pm = _param_map(net)
    missing = [k for k in pm if k not in tensors]
    extra = [k for k in tensors if k not in pm]
    if missing or extra:
        raise KeyError(f"missing {missing[:5]}, unexpected {extra[:5]}")
    with torch.no_grad():
        for k, (t, kind) in pm.items():
            v = keras_to_torch(tensors[k], kind, t.shape)
            if tuple(v.shape) != tuple(t.shape):
                raise ValueError(f"{k}: shape {tuple(v.shape)} does not fit {tuple(t.shape)}")
            t.copy_(v.to(t.dtype))


def keras_grad(net, name, keras_shape):
    """The gradient of Keras weight `name` in the Keras layout."""
    t, kind = _param_map(net)[name]
    return torch_to_keras(t.grad, kind, keras_shape)


def set_mode(net, bn_train, dropout=False):
    """BN in batch-statistics mode (bn_train) or moving-statistics mode; dropout on only
    when asked."""
    net.train(bn_train)
    for layer in net.layers.values():
        if layer.kind == "dropout":
            layer.module.train(dropout)


def keras_bn_update(moving_mean, moving_var, x):
    """Keras' moving-statistics update for BN input x (N, C, ...): biased variance,
    moving = 0.99·moving + 0.01·batch."""
    dims = [0] + list(range(2, x.dim()))
    mean = x.mean(dim=dims)
    var = x.var(dim=dims, unbiased=False)
    return (BN_MOMENTUM * moving_mean + (1 - BN_MOMENTUM) * mean,
            BN_MOMENTUM * moving_var + (1 - BN_MOMENTUM) * var)


def keras_shape(t):
    """A recorded NCHW output as the Keras (H, W, C) or (C,) shape."""
    s = tuple(t.shape[1:])
    return (s[1], s[2], s[0]) if len(s) == 3 else s
