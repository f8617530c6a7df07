# SPDX-License-Identifier: Apache-2.0
"""The soak, short form (bench/soak.py runs the long one): mixed load from
16 clients, kill -9 and restart at random moments, a root whose file system
fills up and is freed, slow readers. Every acknowledged write is checked
after each restart and at the end; the tree holds nothing half-written, and
Distribution 2.8.2 serves what ringport wrote."""
import tempfile

from ringtest.soak import Soak, make_small_fs


def test_a_short_soak_loses_nothing_acknowledged_through_kills_and_a_full_disk():
    work = tempfile.mkdtemp(prefix="ringtest-soak-")
    mnt, cleanup = make_small_fs(256, work)
    try:
        soak = Soak(mnt + "/root", clients=16, duration_s=40, kill_every_s=(8, 15),
                    fs_path=mnt, env={"RINGPORT_STORAGE_INDEX_SNAPSHOT_INTERVAL_S": "2"})
        soak.filler_every_s = 12
        rep = soak.run()
        print(rep)
        assert rep["restarts"] >= 3, rep  # 2+ kills and the clean stop
        assert not rep["unexplained"], rep["unexplained"]
        assert not rep["check_problems"], rep["check_problems"]
        assert rep["clean_stop_code"] == 0 and not rep["sanitizer"], rep
        assert rep["acknowledged"]["manifests"] >= 50, rep
        ok = rep["requests_ok"]
        for op in ("push", "chunked", "resumed", "pull", "head", "tags", "delete", "mount"):
            assert ok.get(op, 0) > 0, f"no successful {op}: {ok}"
        assert rep.get("fills", 0) >= 1, rep
        assert not soak.tree_integrity(), "a blob's bytes do not match its digest"
        assert not soak.distribution_serves(), "Distribution does not serve the tree"
    finally:
        cleanup()
