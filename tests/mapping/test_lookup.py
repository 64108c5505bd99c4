"""The mapping lookup cache: same answers as the database, invalidated across processes."""
from __future__ import annotations

from twisted.internet import reactor

from dhis2gw.mapping.lookup import CachedMappings, SharedVersion
from dhis2gw.storage.mappings import MappingStore
from tests.mapping.support import MappingRig, make_csv, sample_rows

DE_OPD, DE_ANC1, COC_M, COC_F = "Re46C6Apebu", "sHyMCqP5u8T", "xwXBjw0KE34", "de3899n1WEy"


class LookupTests(MappingRig):
    """CachedMappings against MappingStore on the same rows."""

    async def seed(self) -> None:
        rows = [
            {"code": "OPD", "dataelement": DE_OPD},
            {"code": "OPD", "dataelement": DE_ANC1, "source_name": "emr"},            # more specific wins
            {"code": "HIV_M", "name": "HIV male", "dataelement": "mr3nbJiajRl", "category_option_combo": COC_M},
            {"code": "HIV_F", "name": "HIV female", "dataelement": "mr3nbJiajRl", "category_option_combo": COC_F},
            {"code": "OTHER", "dataelement": DE_OPD, "instance_name": "elsewhere"},   # another destination
            {"code": "KAL", "what": "ou", "source_orgunit": "KAL-01", "destination_orgunit": "ty5AJ6ZU5f7"},
            {"code": "KAL2", "what": "ou", "source_orgunit": "KAL-01", "destination_orgunit": "a0BQ4umzjN4",
             "source_name": "emr", "instance_name": "main"},
        ]
        answer = await self.call("POST", "/api/v2/mappings/import/csv", data=make_csv(rows))
        self.assertEqual(answer.json["counts"]["inserted"], 7, answer.json)

    async def test_same_answers_as_the_database(self) -> None:
        """Every scheme, source and org-unit lookup gives what MappingStore gives."""
        await self.seed()
        direct = MappingStore(self.db)
        cases = [(["OPD", "HIV_M", "HIV_F", "OTHER", "NOPE"], "CODE", "", "main"),
                 (["OPD", "HIV_M"], "CODE", "emr", "main"),
                 (["HIV male", "HIV female"], "NAME", "", "main"),
                 ([f"mr3nbJiajRl.{COC_F}", DE_OPD, "mr3nbJiajRl.zzzzzzzzzzz"], "UID", "", "main"),
                 (["OTHER"], "CODE", "", "elsewhere")]
        for keys, scheme, source, instance in cases:
            want = await direct.data_value_mappings(keys, scheme, source, instance)
            got = await self.cached.data_value_mappings(keys, scheme, source, instance)
            self.assertEqual({k: (v["dataelement"], v["category_option_combo"]) for k, v in got.items()},
                             {k: (v["dataelement"], v["category_option_combo"]) for k, v in want.items()},
                             (keys, scheme, source))
        got = await self.cached.data_value_mappings(["OPD"], "CODE", "emr", "main")
        self.assertEqual(got["OPD"]["dataelement"], DE_ANC1)
        for source in ("", "emr"):
            self.assertEqual(await self.cached.org_unit_mapping("KAL-01", source, "main"),
                             await direct.org_unit_mapping("KAL-01", source, "main"))
        self.assertEqual(await self.cached.org_unit_mapping("KAL-01", "emr", "main"), "a0BQ4umzjN4")
        self.assertIsNone(await self.cached.org_unit_mapping("NOPE", "", "main"))

    async def test_served_from_memory_and_invalidated_across_processes(self) -> None:
        """Repeat lookups do not hit PostgreSQL; an edit made by another process is seen after its version bump."""
        await self.seed()
        other_process = CachedMappings(self.db, SharedVersion(self.redis, reactor, f"{self.prefix}:mappings:version",
                                                              check_interval=0.0))
        self.assertEqual((await other_process.data_value_mappings(["OPD"], "CODE", "", "main"))["OPD"]["dataelement"],
                         DE_OPD)
        await other_process.data_value_mappings(["OPD"], "CODE", "", "main")
        self.assertEqual(other_process.loads, 1)
        await self.call("POST", "/api/v2/mappings/import/csv",
                        data=make_csv([{"code": "OPD", "dataelement": "fBMbkOwHQxP"}]))
        got = await other_process.data_value_mappings(["OPD"], "CODE", "", "main")
        self.assertEqual(got["OPD"]["dataelement"], "fBMbkOwHQxP")
        self.assertEqual(other_process.loads, 2)
        uid = (await self.call("GET", "/api/v2/mappings?code=OPD&source_name=")).json["items"][0]["uid"]
        await self.call("DELETE", f"/api/v2/mappings/{uid}")
        self.assertEqual(await other_process.data_value_mappings(["OPD"], "CODE", "", "main"), {})

    async def test_redis_down_falls_back_to_the_database(self) -> None:
        """Without Redis the cache is bypassed, so answers stay right."""
        await self.call("POST", "/api/v2/mappings/import/csv", data=make_csv(sample_rows(2)))

        class DeadRedis:
            async def call(self, *a: object, **k: object) -> None:
                raise ConnectionError("down")

        cached = CachedMappings(self.db, SharedVersion(DeadRedis(), reactor, "x"))
        got = await cached.data_value_mappings(["C000001"], "CODE", "", "main")
        self.assertEqual(got["C000001"]["dataelement"], "Re46C6Apebu")
        self.assertEqual(cached.loads, 0)
