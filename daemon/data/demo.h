/* demo.h — procedural "weed photographs": a synthetic ImageFolder for trying initlab without
 * the paper's (private) data.
 *
 * Each image shows one plant of a species on soil: leaves drawn from the species'
 * outline (ovate, lanceolate, arrow-shaped, round), lobes (rounded or runcinate),
 * serration, compound structure (trifoliate, pinnate leaflets), venation (pinnate,
 * parallel, palmate), hue and surface (mealy speckle, gloss, a pale chevron), arranged as
 * a rosette, opposite pairs on a stem or a clump of blades — with random pose, scale,
 * leaf count, bending, soil texture and pebbles, straw debris, cast shadows, lighting
 * gradient, colour cast, defocus and sensor noise, then JPEG-compressed (quality 90).
 * Several species share colours and outlines, so the classes are learnable but not
 * trivially separable. Everything is a pure function of (species, size, seed). */
#ifndef INITLAB_DATA_DEMO_H
#define INITLAB_DATA_DEMO_H

#include <stddef.h>
#include <stdint.h>

#include "data/progress.h"

/* Number of species available (the most classes demo data can have), and their names. */
int data_demo_species_count(void);
const char *data_demo_species_name(int species);

/* Renders one photograph of species at size×size into rgb (size, size, 3). 8 <= size <=
 * DATA_RESIZE_MAX. Returns 0, or -1 for a bad argument or no memory. Thread-safe. */
int data_demo_render(int species, int size, uint64_t seed, uint8_t *rgb);

/* The same for a width×height photograph (8..8192 each), e.g. camera-size test images;
 * the plant scales with the shorter side. */
int data_demo_render_rect(int species, int width, int height, uint64_t seed, uint8_t *rgb);

typedef struct {
    int classes;     /* 1..data_demo_species_count() */
    int per_class;   /* >= 1 */
    int size;        /* image side, 8..DATA_RESIZE_MAX */
    uint64_t seed;
    int quality;     /* JPEG quality, 1..100 */
    int threads;     /* <= 0 means 2 */
} DataDemoConfig;

/* Writes the dataset into dir (created when missing): one folder per species, named after
 * it, holding <species>_NNNN.jpg. Existing files are never replaced: writing into a
 * folder that already holds one of the names fails. progress (may be NULL) gets (images
 * written, total) from the calling thread and may cancel. Returns 0, -1 with a message
 * in err[errlen], or -2 when cancelled. */
int data_demo_write(const char *dir, const DataDemoConfig *cfg, DataProgressFn progress,
                    void *user, char *err, size_t errlen);

#endif
