/* fuzz_config: the config loader (libconfig text to struct config, every
 * module's group parser, the checks across groups) from memory, as
 * `cutover check` and a reload run it, then config_restart_needed() both
 * ways against the contract's minimal config, as a reload compares them.
 *
 * Loading only reads files (certificates, token files, @include), never
 * writes: inputs that could name a device or a pseudo-file (which may never
 * end) are skipped. The system CA store that https upstreams load is an
 * empty file: loading the real one costs ~200 ms per input under ASan,
 * and the host's store is not what is fuzzed. */
#include "fuzz.h"

#include "config.h"

/* The minimal config of the contract, which must be accepted as written. */
static const char minimal[] =
	"listen = ( { address = \"127.0.0.1:18080\"; } );\n"
	"admin = { address = \"unix:/tmp/cutover-test/admin.sock\"; };\n"
	"upstreams = {\n"
	"  old = { url = \"http://127.0.0.1:18081\"; };\n"
	"  new = { url = \"http://127.0.0.1:18082\"; };\n"
	"};\n"
	"state_file = \"/tmp/cutover-test/state.json\";\n"
	"journal_file = \"/tmp/cutover-test/journal.log\";\n"
	"spool = { dir = \"/tmp/cutover-test/spool\"; };\n"
	"routes = (\n"
	"  { name = \"submit\";  match = { methods = [\"POST\", \"HEAD\"]; path = \"^/a/([^/]+)/receiver/\"; }; project = 1; spool = true; },\n"
	"  { name = \"restore\"; match = { path = \"^/a/([^/]+)/phone/restore/\"; }; project = 1; },\n"
	"  { name = \"project\"; match = { path = \"^/a/([^/]+)/\"; }; project = 1; },\n"
	"  { name = \"default\"; }\n"
	");\n";

static struct config *baseline;

static void free_baseline(void)
{
	config_free(baseline);
	baseline = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *empty = fuzz_tmpdir("fuzz-config", "empty-ca.pem");
	FILE *f = fopen(empty, "w");
	if (!f || fclose(f) != 0)
		abort();
	setenv("SSL_CERT_FILE", empty, 1);
	setenv("SSL_CERT_DIR", fuzz_tmp.dir, 1);
	baseline = config_load_string(minimal, "minimal.conf", stderr);
	if (!baseline)
		abort();
	atexit(free_baseline);
	return 0;
}

static bool may_open_special_files(const char *text)
{
	static const char *const risky[] = { "@include", "dev/", "proc/", "sys/", "\\x", "fd/" };
	for (size_t i = 0; i < sizeof(risky) / sizeof(risky[0]); i++)
		if (strstr(text, risky[i]))
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 64 * 1024)
		return 0;
	char *text = fuzz_cstr(data, size);
	if (strlen(text) != size || may_open_special_files(text)) {
		free(text);
		return 0;
	}
	struct config *cfg = config_load_string(text, "fuzz.conf", fuzz_devnull());
	if (cfg) {
		FUZZ_CHECK(cfg->listen && cfg->admin && cfg->upstream && cfg->dns &&
				   cfg->maintenance && cfg->spool && cfg->state && cfg->log &&
				   cfg->limits && cfg->rewrite,
			   "a loaded config with a NULL part");
		config_restart_needed(baseline, cfg);
		config_restart_needed(cfg, baseline);
		FUZZ_CHECK(config_restart_needed(cfg, cfg) == NULL, "a config differs from itself");
		config_free(cfg);
	}
	free(text);
	return 0;
}
