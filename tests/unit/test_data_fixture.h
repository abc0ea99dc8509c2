/* test_data_fixture.h — temporary directories and JPEG datasets for the data module's tests. */
#ifndef INITLAB_TEST_DATA_FIXTURE_H
#define INITLAB_TEST_DATA_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

/* A new empty directory under $TMPDIR or /tmp (free() the name), or NULL. */
char *fixture_data_tmpdir(void);
/* Removes dir and everything below it; NULL is fine. Frees nothing. */
void fixture_data_rmrf(const char *dir);
/* Writes bytes to dir/rel (creating parent folders). Returns 0 or -1. */
int fixture_data_write(const char *dir, const char *rel, const void *bytes, size_t n);
/* Makes dir/rel a symbolic link to target (creating parent folders). Returns 0 or -1. */
int fixture_data_link(const char *dir, const char *rel, const char *target);
/* Encodes pix (h, w, channels) at quality and writes it to dir/rel. Returns 0 or -1. */
int fixture_data_write_jpeg(const char *dir, const char *rel, const uint8_t *pix, int w, int h,
                            int channels, int quality);
/* The JPEG bytes of pix in *out (malloc, caller frees) and *n. Returns 0 or -1. */
int fixture_data_encode(const uint8_t *pix, int w, int h, int channels, int quality,
                        uint8_t **out, size_t *n);
/* Fills rgb (h, w, 3) with the solid colour c. */
void fixture_data_fill(uint8_t *rgb, int w, int h, const uint8_t c[3]);
/* The solid colour of image k of class c in fixture_data_solid_dataset. */
void fixture_data_color(int c, int k, uint8_t out[3]);
/* Writes classes × per_class solid-colour w×h JPEGs (quality 100) as
 * dir/class_<c>/img_<k>.jpg. Returns 0 or -1. */
int fixture_data_solid_dataset(const char *dir, int classes, int per_class, int w, int h);

#endif
