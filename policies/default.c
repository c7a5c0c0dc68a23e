/*
 * The deny-all preset, built in: what a sandbox gets when no policy file
 * is named (moatd's embedded config, `moat run` without -p). A unit test
 * keeps it equal to policies/presets/deny-all.json.
 */
#include "policies/policy.h"

const char moat_policy_default_json[] =
    "{\"version\":1,"
    "\"filesystem_policy\":{\"include_workdir\":true,"
    "\"read_only\":[\"/usr\",\"/lib\",\"/lib64\",\"/bin\",\"/sbin\","
    "\"/etc\",\"/opt\",\"/proc\",\"/dev/urandom\",\"/dev/random\","
    "\"/dev/zero\"],"
    "\"read_write\":[\"/sandbox\",\"/tmp\",\"/var/tmp\",\"/dev/null\","
    "\"/dev/tty\"]},"
    "\"landlock\":{\"compatibility\":\"best_effort\"},"
    "\"process\":{\"run_as_user\":\"sandbox\",\"run_as_group\":\"sandbox\"},"
    "\"resources\":{\"memory_mb\":4096,\"pids_max\":1024},"
    "\"network_policies\":{}}";
