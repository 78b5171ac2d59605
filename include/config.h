/* config: the wiring that turns one libconfig file into an immutable
 * struct config (conf.h): it reads the file with the reader of conf.h,
 * hands each top-level key to the module that owns it, checks what spans
 * groups, and says which changes a reload cannot take over. Only the entry
 * layer (main.c) includes this; the modules include conf.h. */
#ifndef CUTOVER_CONFIG_H
#define CUTOVER_CONFIG_H

#include <stdio.h>

#include "conf.h"

/* Loads and validates PATH. On failure returns NULL after printing every
 * error, one "FILE:LINE: message" per line, to ERRS. Warnings are printed
 * too but do not fail the load. */
struct config *config_load(const char *path, FILE *errs);
/* Same, from a string in memory (tests); NAME stands for the file name in
 * messages ("NAME:LINE: message"). */
struct config *config_load_string(const char *text, const char *name, FILE *errs);
void config_free(struct config *cfg);

/* The first key changed from RUNNING to NEXT that a running process cannot
 * take over (a reload refuses it), or NULL. Each owner says which of its
 * keys those are; they are asked in the order listen, admin, workers,
 * state_file, journal_file, log.access, dns, spool. */
const char *config_restart_needed(const struct config *running, const struct config *next);

#endif
