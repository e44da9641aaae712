//! Plan files (`ndstream::plan::PlanFile`): a plan run stage by stage in
//! ranges writes the bytes `store` writes; a damaged plan file is an
//! error, never a panic, whatever the damage.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use ndstream::plan::PlanFile;
use ndstream::{random, Executor, StoreOptions};

fn files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn job() -> ndstream::Array {
    let x = random::normal(1.0, 3.0, &[300, 200], [70, 90], 11).unwrap();
    let m = x.mean(Some(0)).unwrap();
    &(&x - &m) / &x.std(None, 0).unwrap()
}

fn executor() -> Executor {
    Executor::builder()
        .memory(32 << 20)
        .threads(2)
        .build()
        .unwrap()
}

/// [`job`] stored in one process at `d/ref.zarr` with `opts`, and planned
/// into `d/out.zarr` with the plan file `d/p.json`.
fn stored_and_planned(d: &Path, opts: &StoreOptions) -> PlanFile {
    let exec = executor();
    let a = job();
    ndstream::store(&exec, &a, d.join("ref.zarr").to_str().unwrap(), opts).unwrap();
    PlanFile::create(
        &exec,
        &a,
        d.join("out.zarr").to_str().unwrap(),
        opts,
        &d.join("p.json"),
        None,
    )
    .unwrap()
}

#[test]
fn a_plan_run_in_ranges_writes_what_store_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let exec = executor();
    let opts = StoreOptions {
        chunks: Some(vec![40, 50]),
        codec: Some("zstd:2".parse().unwrap()),
        ..StoreOptions::default()
    };
    let a = job();
    let (reference, out) = (d.join("ref.zarr"), d.join("out.zarr"));
    let plan = stored_and_planned(d, &opts);
    // What was written reads back as what was made.
    let again = PlanFile::load(&d.join("p.json")).unwrap();
    assert_eq!(again.to_json(), plan.to_json());
    for (s, st) in again.stages.iter().enumerate() {
        let mut t = 0;
        while t < st.tasks {
            let end = (t + 5).min(st.tasks);
            again.run_task(s, t..end, 1 + (t as usize % 3)).unwrap();
            t = end;
        }
    }
    let status = again.status().unwrap();
    assert!(status.complete);
    assert_eq!(status.next_stage(), None);
    assert_eq!(files(&out), files(&reference));
    // A second plan cannot reuse the plan file or the work directory.
    let e = PlanFile::create(
        &exec,
        &a,
        d.join("o2.zarr").to_str().unwrap(),
        &opts,
        &d.join("p.json"),
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("exists"), "{e}");
    assert!(!d.join("o2.zarr").exists());
}

/// `sync` (the CLI's `--sync`) is part of the plan: every task that reads
/// the plan flushes what it writes, and a plan file written before the
/// field existed reads as not flushing.
#[test]
fn a_plan_keeps_its_sync_setting_for_every_task() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let opts = StoreOptions {
        chunks: Some(vec![40, 50]),
        codec: Some("zstd:2".parse().unwrap()),
        sync: true,
        ..StoreOptions::default()
    };
    let plan = stored_and_planned(d, &opts);
    let (reference, out) = (d.join("ref.zarr"), d.join("out.zarr"));
    assert!(plan.sync);
    let text = std::fs::read_to_string(d.join("p.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["output"]["sync"], serde_json::json!(true), "{text}");
    let again = PlanFile::load(&d.join("p.json")).unwrap();
    assert!(again.sync);
    for (s, st) in again.stages.iter().enumerate() {
        again.run_task(s, 0..st.tasks, 2).unwrap();
    }
    assert!(again.status().unwrap().complete);
    assert_eq!(files(&out), files(&reference));
    // Without the field: not flushed, as before it existed.
    let mut old = v.clone();
    old["output"].as_object_mut().unwrap().remove("sync");
    let p = PlanFile::from_json(&old.to_string(), &d.join("old.json")).unwrap();
    assert!(!p.sync);
    old["output"]["sync"] = serde_json::json!("yes");
    let e = PlanFile::from_json(&old.to_string(), &d.join("old.json")).unwrap_err();
    assert!(e.to_string().contains("`sync` is not true or false"), "{e}");
}

/// A plan that overwrites an array on disk leaves the old one whole and
/// readable until its last stage, which swaps the new one in: the bytes
/// `store` writes, no staging directory and no plan id left. An
/// abandoned one (`remove_work`) leaves the old array as it was; what
/// `Overwrite` refuses to replace is refused before anything is made.
#[test]
fn a_plan_that_overwrites_swaps_the_new_array_in_at_its_last_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let exec = executor();
    let a = job();
    let opts = StoreOptions {
        chunks: Some(vec![40, 50]),
        codec: Some("zstd:2".parse().unwrap()),
        ..StoreOptions::default()
    };
    let (reference, out) = (d.join("ref.zarr"), d.join("out.zarr"));
    ndstream::store(&exec, &a, reference.to_str().unwrap(), &opts).unwrap();
    // The old array: another shape, dtype and chunking.
    let old = random::uniform(0.0, 1.0, &[30, 7], [8, 7], 5)
        .unwrap()
        .astype(ndstream::DType::F32);
    let out_s = out.to_str().unwrap();
    ndstream::store(&exec, &old, out_s, &StoreOptions::default()).unwrap();
    let old_files = files(&out);
    let overwrite = StoreOptions {
        mode: ndstream::formats::WriteMode::Overwrite,
        ..opts.clone()
    };
    let plan = PlanFile::create(&exec, &a, out_s, &overwrite, &d.join("p.json"), None).unwrap();
    assert!(plan.replace);
    let staging = d.join(format!(".out.zarr.ndstream-plan-{}", plan.id));
    assert!(staging.is_dir());
    let again = PlanFile::load(&d.join("p.json")).unwrap();
    assert!(again.replace);
    let finish = again.stages.len() - 1;
    for (s, st) in again.stages.iter().enumerate().take(finish) {
        again.run_task(s, 0..st.tasks, 2).unwrap();
        // Every stage but the last leaves the old array as it was.
        assert_eq!(files(&out), old_files, "after stage {s}");
    }
    let read = ndstream::open(out_s).unwrap();
    assert_eq!(read.shape(), &[30, 7]);
    again.run_task(finish, 0..1, 2).unwrap();
    assert!(again.status().unwrap().complete);
    assert_eq!(files(&out), files(&reference));
    assert!(!staging.exists());
    // The last stage again (a runner's retry) changes nothing.
    again.run_task(finish, 0..1, 1).unwrap();
    assert_eq!(files(&out), files(&reference));

    // Abandoned before its last stage: the staged array goes, the array
    // that stood stays.
    let before = files(&out);
    let p2 = PlanFile::create(&exec, &old, out_s, &overwrite, &d.join("p2.json"), None).unwrap();
    let staging2 = d.join(format!(".out.zarr.ndstream-plan-{}", p2.id));
    p2.run_task(0, 0..p2.stages[0].tasks, 2).unwrap();
    assert!(staging2.is_dir());
    p2.remove_work().unwrap();
    assert!(!staging2.exists());
    assert!(!d.join("p2.json.work").exists());
    assert_eq!(files(&out), before);

    // A directory that is not Zarr's is not replaced, and nothing is made.
    let other = d.join("other.zarr");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), b"mine").unwrap();
    let listing = |d: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let names = listing(d);
    let e = PlanFile::create(
        &exec,
        &a,
        other.to_str().unwrap(),
        &overwrite,
        &d.join("p3.json"),
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("refusing to delete it"), "{e}");
    assert_eq!(listing(d), names);
    assert_eq!(
        files(&other),
        vec![("notes.txt".to_string(), b"mine".to_vec())]
    );
}

#[cfg(feature = "hdf5")]
/// The array at `path`, its chunking, codec and attributes as `info`
/// tells them, and whether it is marked incomplete.
fn described(
    path: &str,
) -> (
    Vec<u8>,
    Option<Vec<u64>>,
    String,
    ndstream::Attributes,
    bool,
) {
    let exec = executor();
    let bytes = exec
        .compute(&ndstream::open(path).unwrap())
        .unwrap()
        .to_ne_bytes();
    match ndstream::formats::info(path).unwrap() {
        ndstream::formats::StoreInfo::Array(i) => {
            (bytes, i.chunks, i.codec, i.attributes, i.incomplete)
        }
        other => panic!("{path} is not an array: {other:?}"),
    }
}

/// HDF5 outputs: the tasks write a Zarr array in the work directory, and
/// the last stage copies it into the output as `store` writes it; a copy
/// killed midway is finished by running the last stage again; a dataset
/// to replace stays as it was until the last stage.
#[cfg(feature = "hdf5")]
#[test]
fn a_plan_to_hdf5_copies_its_work_array_in_at_its_last_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let exec = executor();
    let a = job();
    let mut attributes = ndstream::Attributes::new();
    attributes.insert("units".into(), serde_json::json!("K"));
    let opts = StoreOptions {
        chunks: Some(vec![40, 50]),
        codec: Some("gzip:4".parse().unwrap()),
        attributes,
        ..StoreOptions::default()
    };
    let at = |name: &str| d.join(name).to_str().unwrap().to_string();
    ndstream::store(&exec, &a, &format!("{}:/g/x", at("ref.h5")), &opts).unwrap();
    let reference = described(&format!("{}:/g/x", at("ref.h5")));
    assert!(!reference.4);
    let run_all_but_last = |plan: &PlanFile| {
        let finish = plan.stages.len() - 1;
        for (s, st) in plan.stages.iter().enumerate().take(finish) {
            plan.run_task(s, 0..st.tasks, 1 + s % 2).unwrap();
        }
        finish
    };

    // A new HDF5 dataset: made, marked incomplete, when the plan is.
    let out = format!("{}:/g/x", at("out.h5"));
    let plan = PlanFile::create(&exec, &a, &out, &opts, &d.join("p.json"), None).unwrap();
    assert!(plan.copies().unwrap() && !plan.replace);
    let work = d.join("p.json.work/output.zarr");
    assert!(work.join(".ndstream-incomplete").exists());
    assert!(described(&out).4);
    let plan = PlanFile::load(&d.join("p.json")).unwrap();
    assert_eq!(plan.attributes, opts.attributes);
    let finish = run_all_but_last(&plan);
    assert!(described(&out).4, "complete before the last stage");
    // A kill in the middle of the copy: the work array complete, the
    // output holding some chunks, the last stage not recorded.
    let spec = |mode| {
        let mut s = ndstream::sink_spec(&a, &opts);
        s.mode = mode;
        s
    };
    ndstream::formats::create_sink(work.to_str().unwrap(), &{
        let mut s =
            ndstream::formats::SinkSpec::new(vec![300, 200], ndstream::DType::F64, vec![40, 50]);
        s.mode = ndstream::formats::WriteMode::Into;
        s
    })
    .unwrap()
    .finish()
    .unwrap();
    {
        let part =
            ndstream::formats::create_sink(&out, &spec(ndstream::formats::WriteMode::Resume))
                .unwrap();
        let chunk = exec
            .compute(&a.index(&ndstream::s![0..40, 0..50]).unwrap())
            .unwrap();
        part.write_chunk(&[0, 0], &chunk).unwrap();
    }
    assert!(described(&out).4);
    plan.run_task(finish, 0..1, 2).unwrap();
    assert!(plan.status().unwrap().complete);
    assert_eq!(described(&out), reference);
    // The work array and the records are gone; the retry is a no-op.
    assert!(!work.exists());
    plan.run_task(finish, 0..1, 2).unwrap();
    assert_eq!(described(&out), reference);
    plan.remove_work().unwrap();
    assert!(!d.join("p.json.work").exists());

    // Replacing a dataset: the old one stays whole until the last stage.
    let old = random::uniform(0.0, 1.0, &[30, 7], [8, 7], 5).unwrap();
    let replaced = format!("{}:/g/x", at("old.h5"));
    ndstream::store(&exec, &old, &replaced, &StoreOptions::default()).unwrap();
    let before = described(&replaced);
    let overwrite = StoreOptions {
        mode: ndstream::formats::WriteMode::Overwrite,
        ..opts.clone()
    };
    let file_bytes = std::fs::read(at("old.h5")).unwrap();
    let p = PlanFile::create(&exec, &a, &replaced, &overwrite, &d.join("r.json"), None).unwrap();
    assert!(p.replace);
    let finish = run_all_but_last(&p);
    assert_eq!(std::fs::read(at("old.h5")).unwrap(), file_bytes);
    assert_eq!(described(&replaced), before);
    p.run_task(finish, 0..1, 2).unwrap();
    assert_eq!(described(&replaced), reference);

    // A file that is not HDF5 is not replaced, and nothing is made.
    std::fs::write(at("notes.h5"), b"mine").unwrap();
    let e = PlanFile::create(
        &exec,
        &a,
        &format!("{}:/x", at("notes.h5")),
        &overwrite,
        &d.join("s.json"),
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("notes.h5"), "{e}");
    assert_eq!(std::fs::read(at("notes.h5")).unwrap(), b"mine");
    assert!(!d.join("s.json").exists() && !d.join("s.json.work").exists());
}

/// `.npy` (and raw) outputs are copied from the work array by the last
/// stage too: the same bytes as `store`'s, and nothing at the output but
/// the file marked incomplete until then.
#[test]
fn a_plan_to_npy_writes_the_file_store_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let exec = executor();
    let a = job();
    let at = |name: &str| d.join(name).to_str().unwrap().to_string();
    // `.npy`: the same bytes as `store`'s, file for file.
    let npy = StoreOptions {
        chunks: Some(vec![40, 50]),
        ..StoreOptions::default()
    };
    ndstream::store(&exec, &a, &at("ref.npy"), &npy).unwrap();
    let p = PlanFile::create(&exec, &a, &at("out.npy"), &npy, &d.join("q.json"), None).unwrap();
    assert!(p.copies().unwrap());
    let finish = p.stages.len() - 1;
    for (s, st) in p.stages.iter().enumerate().take(finish) {
        p.run_task(s, 0..st.tasks, 2).unwrap();
    }
    assert_ne!(
        std::fs::read(at("out.npy")).unwrap(),
        std::fs::read(at("ref.npy")).unwrap()
    );
    p.run_task(finish, 0..1, 2).unwrap();
    assert_eq!(
        std::fs::read(at("out.npy")).unwrap(),
        std::fs::read(at("ref.npy")).unwrap()
    );

    assert!(!d.join("q.json.work/output.zarr").exists());
}

#[test]
fn a_damaged_plan_file_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let exec = Executor::builder()
        .memory(32 << 20)
        .threads(1)
        .build()
        .unwrap();
    let a = job();
    let out = d.join("out.zarr");
    PlanFile::create(
        &exec,
        &a,
        out.to_str().unwrap(),
        &StoreOptions::default(),
        &d.join("p.json"),
        None,
    )
    .unwrap();
    let text = std::fs::read_to_string(d.join("p.json")).unwrap();
    let mut damaged: Vec<String> = Vec::new();
    // Every number replaced by values that break sizes and ranges.
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let j = (i..bytes.len())
                .find(|&k| !bytes[k].is_ascii_digit())
                .unwrap_or(bytes.len());
            for v in ["0", "18446744073709551615", "-1", "1e308", "7"] {
                damaged.push(format!("{}{v}{}", &text[..i], &text[j..]));
            }
            i = j;
        } else {
            i += 1;
        }
    }
    // Pieces cut out.
    for step in [3, 17, 101] {
        damaged.push(
            text.chars()
                .enumerate()
                .filter(|(k, _)| k % step != 0)
                .map(|(_, c)| c)
                .collect(),
        );
    }
    damaged.push(text.replace("\"partials\"", "\"write\""));
    damaged.push(text.replace("\"kind\": \"finish\"", "\"kind\": \"merge\""));
    damaged.push(String::new());
    for (k, t) in damaged.iter().enumerate() {
        let p = d.join(format!("bad{k}.json"));
        std::fs::write(&p, t).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            if let Ok(plan) = PlanFile::load(&p) {
                let _ = plan.status();
                if let Some(st) = plan.stages.first() {
                    let _ = plan.run_task(0, 0..st.tasks.min(2), 1);
                }
            }
        }));
        assert!(r.is_ok(), "damage {k} panicked: {}", &t[..t.len().min(200)]);
    }
}
