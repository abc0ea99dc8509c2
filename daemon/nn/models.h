/* models.h — the model zoo: Keras MobileNet v1 and ResNet-50, ResNet-18/34, plain and MLP controls.
 *
 * model_build turns a ModelConfig into a finalized Net (parameters allocated, not yet
 * initialized: call init_net). Every net outputs logits (N, 1, 1, classes); the softmax
 * is in the loss. Input (N, size, size, channels), NHWC.
 *
 * Architectures (layer names as in keras.applications):
 *   mobilenet  keras.applications.mobilenet (v1, Keras 3): conv1 3×3/2 "same" 32·α no bias,
 *              conv1_bn, conv1_relu (ReLU6); 13 blocks conv_dw_i (3×3 depthwise, no bias;
 *              stride-2 blocks 2, 4, 6, 12 are preceded by conv_pad_i = ZeroPadding
 *              ((0,1),(0,1)) and use "valid"), conv_dw_i_bn, conv_dw_i_relu, conv_pw_i (1×1,
 *              int(f·α) filters, no bias), conv_pw_i_bn, conv_pw_i_relu with f = 64, 128,
 *              128, 256, 256, 512 ×6, 1024, 1024. BN momentum 0.99, epsilon 1e-3.
 *   resnet50   keras.applications.resnet.ResNet50 (v1): conv1_pad (3), conv1_conv 7×7/2 64,
 *              conv1_bn, conv1_relu, pool1_pad (1), pool1_pool 3×3/2; bottleneck stages
 *              conv2..conv5 with (64, 3) (128, 4) (256, 6) (512, 3) blocks; block j of stage
 *              s is convS_blockJ_{1,2,3}_{conv,bn}, _{1,2}_relu, _0_{conv,bn} (projection
 *              shortcut, first block only), _add, _out. The stride (2 from conv3 on) sits on
 *              the first 1×1 conv and on the shortcut; every conv has a bias; BN epsilon
 *              1.001e-5. Option width (64 = Keras) scales the stem and the stages:
 *              stem width, bottlenecks width·2^(s-2) (×4 at their outputs).
 *   resnet18/34  the same stem and names with basic blocks: convS_blockJ_1_conv (3×3,
 *              carries the stage's stride), _1_bn, _1_relu, _2_conv (3×3), _2_bn, a
 *              projection shortcut _0_conv (1×1, strided) + _0_bn only where the shape
 *              changes (first block of conv3..conv5), _add, _out. Blocks (2,2,2,2) and
 *              (3,4,6,3). The stem conv1_conv has `width` filters, stages conv2..conv5
 *              width, 2·width, 4·width, 8·width (width 64 by default, as in He et al.).
 *              Convs keep biases and BN epsilon 1.001e-5 as in Keras' ResNet family.
 *   plain      a VGG-style stack of `depth` 3×3 "same" convs conv_1..conv_D (+ conv_i_bn
 *              when batchnorm) each followed by conv_i_act. The layers split into
 *              min(4, depth) stages of equal length (layer i, 0-based, is in stage
 *              i·stages/depth); the first conv of stages 2..4 has stride 2 and doubles the
 *              width (width, 2·width, 4·width, 8·width). Convs have a bias when batchnorm is
 *              off. BN epsilon 1e-3.
 *   mlp        flatten, then `depth` dense layers dense_1..dense_D of `width` units, each
 *              followed by dense_i_act.
 *
 * Heads (the last layers, names in quotes):
 *   paper  "avg_pool" GAP, "fc1" Dense 256, "fc1_bn" BN (epsilon 1e-3), "fc1_relu" ReLU,
 *          "predictions" Dense classes. The default.
 *   keras  mobilenet: "global_average_pooling2d" GAP (keepdims), "dropout", "conv_preds"
 *          1×1 conv with bias, "reshape_2" flatten (Keras then adds a softmax layer
 *          "predictions", which here is part of the loss); resnets and plain: "avg_pool"
 *          GAP, "predictions" Dense classes.
 *   For mlp the GAP is left out of both heads (its input is already flat).
 *
 * Layer counts, with the input layer (keras head / paper head): mobilenet 90 / 91 (Keras'
 * model.layers has 91 with the top: its softmax layer is the loss here); resnet50 177 /
 * 180 (Keras: 177); resnet18 71 / 74; resnet34 127 / 130; plain 3 + 3·depth / 6 + 3·depth
 * (2·depth without batchnorm); mlp 3 + 2·depth / 6 + 2·depth.
 *
 * Thread-safety: pure functions of their arguments; reentrant. */
#ifndef INITLAB_NN_MODELS_H
#define INITLAB_NN_MODELS_H

#include <stdbool.h>
#include <stddef.h>

#include "nn/net.h"

typedef enum { HEAD_PAPER, HEAD_KERAS } ModelHead;

#define MODEL_MIN_CNN_SIZE 32
#define MODEL_MAX_SIZE 2048
#define MODEL_HEAD_UNITS 256

typedef struct {
    char name[32];        /* "mobilenet", "resnet50", "resnet18", "resnet34", "plain", "mlp" */
    int size;             /* input height = width, px */
    int channels;         /* input channels (3) */
    int classes;          /* logits */
    ModelHead head;
    double alpha;         /* mobilenet width multiplier (1.0) */
    int depth_multiplier; /* mobilenet depthwise multiplier (1) */
    double dropout;       /* mobilenet keras head dropout rate (1e-3) */
    int depth;            /* plain: conv layers (8); mlp: dense layers (3) */
    int width;            /* plain: first-stage filters (32); mlp: units (256);
                             resnets: stem and first-stage filters (64) */
    Activation activation; /* plain and mlp (relu) */
    bool batchnorm;       /* plain (true) */
    int batch;            /* batch capacity of the net (32) */
} ModelConfig;

/* The defaults for model name (Keras' defaults where Keras has the model): size 224,
 * 3 channels, 1000 classes for mobilenet/resnets and 10 for plain/mlp at 32 px, paper
 * head. An unknown name still gives a config (with that name) that model_build refuses.
 * Can't fail. */
ModelConfig model_config_default(const char *name);

/* Builds and finalizes the net for cfg with `threads` compute threads. Returns a new Net
 * (caller frees with net_free), parameters zeroed as net_finalize leaves them, or NULL
 * with a message in err for an unknown model, a size the architecture cannot take (below
 * 32 px for the CNNs), other out-of-range options, or allocation failure. */
Net *model_build(const ModelConfig *cfg, int threads, char *err, size_t errlen);

/* The model names, NULL-terminated, in a fixed order. Static storage. */
const char *const *model_names(void);

/* Name <-> enum for heads ("paper", "keras") and activations ("relu", "relu6", "tanh",
 * "sigmoid", "softsign"). parse returns 0, or -1 for an unknown name. */
const char *model_head_name(ModelHead head);
int model_head_parse(const char *name, ModelHead *head);
const char *model_activation_name(Activation act);
int model_activation_parse(const char *name, Activation *act);
/* "conv2d", "depthwise_conv2d", "batch_normalization", ... (Keras class names in snake
 * case) for summary tables. */
const char *model_layer_type_name(LayerType type);

#endif
