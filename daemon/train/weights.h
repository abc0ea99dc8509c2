/* weights.h — a net's parameters and BN statistics as safetensors files (Keras names and layouts).
 *
 * Tensor names are the net's parameter names, "<layer>/<kind>" with kind kernel,
 * depthwise_kernel, bias, gamma, beta, moving_mean, moving_variance (Keras weight names
 * without the ":0"), in the net's parameter order. Layouts are Keras': conv kernel
 * (kh, kw, cin, cout), depthwise kernel (kh, kw, C, m), dense kernel (in, out), vectors (C).
 * Metadata always carries layout = "keras". */
#ifndef INITLAB_TRAIN_WEIGHTS_H
#define INITLAB_TRAIN_WEIGHTS_H

#include <stddef.h>

#include "nn/net.h"

/* Writes every parameter of net (trainable and BN moving statistics) to path atomically,
 * with metadata (NULL-terminated key, value pairs, may be NULL) plus layout = "keras".
 * Returns 0, or -1 with a message in err. Reads the net only. */
int weights_save_safetensors(const Net *net, const char *path, const char *const *metadata,
                             char *err, size_t errlen);

/* Loads every parameter of net from path. The file must hold exactly the net's parameters
 * with the same shapes (F32); anything missing, extra or misshapen is refused with a message
 * naming the tensor, and the net is left untouched. Returns 0, or -1 with err set. */
int weights_load_safetensors(Net *net, const char *path, char *err, size_t errlen);

#endif
