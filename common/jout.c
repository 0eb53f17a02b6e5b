/* --json output for cli/: values built with jansson behind a small
 * interface, so that cli/ neither includes jansson nor assembles JSON by
 * hand. A struct jout is a json_t; an allocation failure anywhere marks
 * the value failed, and jout_print reports it once. */
#include "common.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

struct jout {
	json_t *v;
	bool failed;
};

static struct jout *jout_new(json_t *v)
{
	struct jout *j = calloc(1, sizeof *j);
	if (!j || !v) {
		json_decref(v);
		free(j);
		return NULL;
	}
	j->v = v;
	return j;
}

struct jout *jout_object(void)
{
	return jout_new(json_object());
}

struct jout *jout_array(void)
{
	return jout_new(json_array());
}

/* Takes `v` (NULL: failed). */
static void put(struct jout *j, const char *key, json_t *v)
{
	if (!j) {
		json_decref(v);
		return;
	}
	int rc = !v ? -1 : key ? json_object_set_new(j->v, key, v) : json_array_append_new(j->v, v);
	if (rc != 0)
		j->failed = true;
}

void jout_str(struct jout *j, const char *key, const char *s)
{
	put(j, key, s ? json_string(s) : json_null());
}

void jout_int(struct jout *j, const char *key, int64_t n)
{
	put(j, key, json_integer((json_int_t)n));
}

void jout_bool(struct jout *j, const char *key, bool b)
{
	put(j, key, json_boolean(b));
}

void jout_add(struct jout *j, const char *key, struct jout *child)
{
	if (!child) {
		if (j)
			j->failed = true;
		return;
	}
	if (child->failed && j)
		j->failed = true;
	put(j, key, json_incref(child->v));
	jout_free(child);
}

int jout_print(struct jout *j, bool pretty)
{
	int rc = -1;
	if (!j || j->failed)
		latch_error(LATCH_OPERR, "cannot build the JSON output: out of memory");
	else if (json_dumpf(j->v, stdout, pretty ? JSON_INDENT(2) : JSON_COMPACT) != 0 || putchar('\n') == EOF)
		latch_error(LATCH_OPERR, "cannot write the JSON output");
	else
		rc = 0;
	jout_free(j);
	return rc;
}

void jout_free(struct jout *j)
{
	if (!j)
		return;
	json_decref(j->v);
	free(j);
}
