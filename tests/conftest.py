import importlib.util, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
# One thread in the test process and in every process it starts (`segwl`, the demo, papermill kernels, Ray's drivers):
# the models are tiny, and with two pytest-xdist workers on two cores, more threads only spin against each other.
os.environ.setdefault('OMP_NUM_THREADS', '1')
SHARED_DATA = Path(os.environ.get('SEGWL_SHARED_DATA', ROOT.parent/'shared'/'data'))

@pytest.fixture
def examples() -> Path:
    return ROOT/'examples'

@pytest.fixture
def pets_cat() -> Path:
    p = SHARED_DATA/'pets-cat'
    if not p.is_dir():
        pytest.skip(f"needs the Oxford-IIIT Pet data at {p} (set SEGWL_SHARED_DATA); not part of a clone")
    return p

@pytest.fixture(scope='session')
def bench_module():
    "Loads a script of bench/ by name as a module (bench/ is not a package)."
    def load(name):
        spec = importlib.util.spec_from_file_location(name, ROOT/'bench'/f'{name}.py')
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        return m
    return load


def segwl(*argv, cwd=None, check_rc=None, timeout=600, process=None) -> subprocess.CompletedProcess:
    """Run the `segwl` command; `check_rc` asserts the exit status. In this process by default (`segwl.cli.main` with
    stdout and stderr captured, one torch thread, an uncaught exception as exit 1 and its traceback), which spares a
    Python and torch start-up per call (`run-notebook` too: papermill's kernel is a process of its own anyway). In a
    fresh process (this checkout's package first on the path) when `process` is true, or for every call with
    SEGWL_TEST_PROCESS=1: where the process itself is what a test checks (signals, resource limits, the console
    script)."""
    if process is None: process = os.environ.get('SEGWL_TEST_PROCESS') == '1'
    r = (_segwl_process if process else _segwl_here)([str(a) for a in argv], cwd, timeout)
    if check_rc is not None: assert r.returncode == check_rc, r.stdout + r.stderr
    return r


def checkout_env(**more) -> dict:
    "The environment of a Python process a test starts: this checkout's segwl first on the path, one torch thread."
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get('PYTHONPATH')])])
    return {**os.environ, 'PYTHONPATH': path, 'OMP_NUM_THREADS': '1', **more}


def segwl_argv(*argv) -> list:
    "The command line of `segwl ARGV` as this checkout's segwl runs it (with `checkout_env`), not an installed script."
    code = 'import sys; from segwl.cli import main; sys.exit(main(sys.argv[1:]))'
    return [sys.executable, '-c', code, *map(str, argv)]


def _segwl_process(argv, cwd, timeout) -> subprocess.CompletedProcess:
    return subprocess.run(segwl_argv(*argv), cwd=cwd, env=checkout_env(), capture_output=True, text=True,
                          timeout=timeout)


def _segwl_here(argv, cwd, timeout) -> subprocess.CompletedProcess:
    import contextlib, io, traceback, torch
    from segwl.cli import main
    out, err, threads, here = io.StringIO(), io.StringIO(), torch.get_num_threads(), os.getcwd()
    torch.set_num_threads(1)
    try:
        if cwd is not None: os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try: code = main(argv)
            except SystemExit as e:                         # argparse: usage errors and --help
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if isinstance(e.code, str): print(e.code, file=sys.stderr)
            except Exception:
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(here)
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess(['segwl', *argv], code, out.getvalue(), err.getvalue())


def ray_pythonpath(shim: Path, *first) -> str:
    """PYTHONPATH for a Ray instance's or a driver's processes: `shim` (made here) first, then `first`, then what was
    there. Ray's raylet gives its Python helpers a fixed 15 s to start. Each imports jsonschema, which imports the
    optional rfc3987_syntax when installed (a jupyter dependency, `make lab`): it builds a grammar at import, ~2 s of
    CPU a process, and on two busy cores that misses the deadline. The shim leaves that module out: neither Ray nor
    segwl uses it."""
    shim.mkdir(parents=True, exist_ok=True)
    (shim/'rfc3987_syntax.py').write_text('raise ImportError("left out by the tests: slow to import")\n')
    return os.pathsep.join([str(shim), *map(str, first), *filter(None, [os.environ.get('PYTHONPATH')])])


def iou(a, b) -> float:
    "Intersection over union of two bool masks; 1 when both are empty."
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


# pytest-xdist (`make test` runs `pytest -n auto --dist loadgroup`): the tests of these modules share a costly module
# fixture (one local Ray instance; one run of the papermill job), so each of these modules runs on one worker, and
# every other test is scheduled on its own. `xdist_group` marks would say the same, but pytest 9.2 no longer sees the
# node ids that pytest-xdist 3.8 rewrites for them (pytest-dev/pytest-xdist#1386): the grouping is done here.
ONE_WORKER = {'test_engine.py', 'test_job.py'}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue('dist') != 'loadgroup': return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleGroups(LoadScopeScheduling):
        "A module of ONE_WORKER is one unit of work; any other test is a unit of its own. Larger units go first."
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split('::', 1)[0]
            return module if module.rsplit('/', 1)[-1] in ONE_WORKER else nodeid

    return ModuleGroups(config, log)


# `make check` runs `pytest -m 'not slow'`. Slow: the tests below, each over half a second of CPU when measured (a
# training, a command in a process of its own, a kernel, Ray, a panel drawing figures), and any test that carries
# @pytest.mark.slow itself. A slow test missing here only makes `make check` slower; `make test` runs them all.
SLOW_MODULES = {'test_demo.py', 'test_engine.py', 'test_engine_local.py', 'test_job.py'}
SLOW = {
    'test_batch.py': ['test_bench_batch_runs_tiny', 'test_canvas_batches_give_the_same_answers',
                      'test_flag_job_parameter_and_runner', 'test_multiclass_batches_give_the_same_label_maps',
                      'test_promptable_batch_is_set_image_one_at_a_time',
                      'test_runner_and_ray_hand_over_targets_x_batch', 'test_sam3_batch_is_set_image_one_at_a_time',
                      'test_seed_a_broken_image_in_a_batch_fails_alone', 'test_seed_batches_give_the_same_answers',
                      'test_seed_batches_per_reference', 'test_seed_labeller_with_tiny_sam_batch_is_one_at_a_time'],
    'test_bench_label.py': ['test_canvas_runs_with_the_tiny_sam3', 'test_memory_runs_record_rss_after_every_image'],
    'test_bench_quality.py': ['test_packing_changes_nothing_with_stand_ins'],
    'test_bench_suite.py': ['test_watch_sees_a_child_burn_its_cpu'],
    'test_clip.py': ['test_peak_on_red_square', 'test_tiny_deterministic'],
    'test_docs.py': ['test_the_review_demo_runs_from_the_repository_alone'],
    'test_evaluate.py': ['test_a_model_trained_on_tiny_random_labels_is_stamped',
                         'test_all_foreground_baseline_on_pets',
                         'test_tiny_random_labels_stamp_metrics_line_and_figures'],
    'test_export.py': ['test_coco_decodes_to_exactly_the_pets_masks',
                       'test_onnx_model_run_by_onnxruntime_matches_pytorch',
                       'test_torchscript_model_matches_pytorch_and_says_what_it_is',
                       'test_yolo_polygons_cover_each_pets_mask'],
    'test_finetune.py': ['test_a_failed_write_inside_torch_save_is_named',
                         'test_checkpoints_are_plain_tensors_and_no_temporary_files',
                         'test_cli_train_predict_evaluate_end_to_end', 'test_cli_train_stamps_tiny_random_labels',
                         'test_every_registered_architecture_gives_one_logit_channel',
                         'test_full_disk_while_saving_a_checkpoint', 'test_full_disk_while_saving_masks',
                         'test_model_folder_records_history_curve_and_smp_format',
                         'test_model_json_records_what_was_used', 'test_no_tensorboard_no_events',
                         'test_one_progress_bar_with_the_latest_numbers', 'test_reviewed_rows_are_preferred_by_the_cli',
                         'test_sigkill_predict_then_rerun', 'test_sigkill_train_then_rerun',
                         'test_time_budget_stops_mid_epoch', 'test_tiny_random_labels_are_recorded_and_stamped',
                         'test_training_learns_the_synthetic_discs', 'test_two_predicts_into_one_folder',
                         'test_weight_by_score_learns_past_low_scored_wrong_labels',
                         'test_written_files_are_0644_under_umask_022'],
    'test_label.py': ['test_a_trained_model_runs_through_the_one_runner_with_one_resume_rule',
                      'test_killed_process_loses_only_the_image_in_flight',
                      'test_labeller_exact_with_stand_ins_over_sizes_and_aspect_ratios'],
    'test_label_cli.py': ['test_cli_odd_files_exact_rows_and_exit_1', 'test_cli_tiny_models_on_examples',
                          'test_cli_tiny_models_on_odd_files', 'test_cli_tiny_models_resume',
                          'test_cli_tiny_models_same_seed_same_masks'],
    'test_multiclass.py': ['test_cli_classes_on_ray_matches_local', 'test_job_takes_classes'],
    'test_multiclass_train.py': ['test_evaluate_refuses_a_model_of_other_classes', 'test_export_keeps_every_class',
                                 'test_known_answer_beats_the_majority_class', 'test_one_class_is_unchanged',
                                 'test_resume_refuses_other_classes', 'test_train_records_the_classes'],
    'test_packed.py': ['test_cli_flag_and_job_parameter_reach_config_json',
                       'test_multiclass_packed_gives_the_same_label_maps', 'test_seed_each_reference_gets_its_canvases',
                       'test_seed_packed_gives_the_same_masks', 'test_shared_steps_are_billed_in_parts'],
    'test_panels.py': ['test_canvas_min_instance_score_slider_filters_without_a_model_call',
                       'test_canvas_min_score_slider_filters_without_a_model_call',
                       'test_canvas_panel_instances_and_absent', 'test_canvas_panel_tiny_sam3_by_registry_name',
                       'test_class_menu_switches_references_and_text', 'test_errors_land_in_the_output_widget',
                       'test_folder_button_writes_what_segwl_label_writes', 'test_folder_run_counts_absent_images',
                       'test_gates_are_off_by_default_then_say_absent',
                       'test_label_with_all_classes_draws_the_label_map', 'test_min_mask_score_gate',
                       'test_min_score_gate', 'test_peak_threshold_slider_keeps_and_drops_text_peaks',
                       'test_reference_as_paths_and_the_examples_folder', 'test_result_follows_the_controls',
                       'test_saved_settings_round_trip_through_label_settings_and_the_cli',
                       'test_settings_file_runs_segwl_label',
                       'test_sliders_reuse_the_sam_embedding_and_the_similarity_map',
                       'test_the_panel_sets_its_image_again_after_a_run', 'test_the_screenshot_notebooks_run',
                       'test_tiny_random_models_by_registry_name'],
    'test_portable.py': ['test_labels_work_from_another_folder_and_moved_with_their_images'],
    'test_recipe.py': ['test_no_attribute_probing'],
    'test_reliability.py': ['test_export_model_writes_a_new_file_in_the_model_folder',
                            'test_millions_of_unknown_keys_give_one_short_line',
                            'test_sigkill_at_random_moments_then_rerun',
                            'test_two_runs_one_folder_one_refuses_no_row_lost'],
    'test_review_classes.py': ['test_the_classes_review_demo_runs_from_the_repository_alone'],
    'test_rooms.py': ['test_a_room_imports_only_rooms_listed_before_it'],
    'test_sam.py': ['test_cached_file_hashed_once', 'test_cut_short_leaves_nothing',
                    'test_damaged_cached_file_is_named_not_trusted', 'test_download_verify_cache_and_load',
                    'test_env_cache_dir', 'test_http_error_names_url', 'test_real_vit_b_architecture_loads',
                    'test_wrong_hash_leaves_nothing'],
    'test_sam3.py': ['test_from_pretrained_reads_a_local_folder'],
    'test_seed_gate.py': ['test_default_threshold_finds_small_narrow_offcentre_objects',
                          'test_threshold_zero_is_the_seed_behaviour_and_worse'],
    'test_seed_refs.py': ['test_a_second_reference_finds_what_the_first_misses',
                          'test_absent_stays_absent_with_k_references', 'test_bench_table_known_rows',
                          'test_references_of_one_look_and_varied_shapes',
                          'test_the_order_of_the_references_never_matters'],
    'test_stamps.py': ['test_stand_ins_are_recorded_and_stamped_everywhere',
                       'test_tuning_panel_stamps_stand_ins_and_keeps_the_trial_titles'],
    'test_tools.py': ['test_run_notebooks_leaves_a_failing_notebook_as_it_was',
                      'test_run_notebooks_runs_in_place_keeps_cheap_outputs_and_gives_the_same_bytes_twice'],
    'test_trainset.py': ['test_old_min_score_key_and_flag_still_work'],
    'test_voices.py': ['test_job_says_parameters_and_exits_2', 'test_jupyter_shows_one_line'],
    'test_weights_security.py': ['test_cli_hub_cache_pytorch_model_bin_refused'],
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.path.name
        if module in SLOW_MODULES or getattr(item, 'originalname', item.name) in SLOW.get(module, ()):
            item.add_marker(pytest.mark.slow)


def edge(truth: np.ndarray) -> np.ndarray:
    "Pixels within one pixel (8-neighbours) of the boundary of `truth`, on either side."
    def grow(m):
        p = np.pad(m, 1)
        return np.logical_or.reduce([p[1 + dy:p.shape[0] - 1 + dy, 1 + dx:p.shape[1] - 1 + dx]
                                     for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    return grow(truth) & grow(~truth)


def same_up_to_edge(a: np.ndarray, b: np.ndarray, truth: np.ndarray) -> bool:
    "`a` and `b` differ only along the object's edge: what resampling a target into a cell may move, nothing else."
    return a.shape == b.shape and not ((a != b) & ~edge(truth)).any()


def cli(*argv) -> tuple:
    "Exit status, stdout and stderr of `segwl ARGV`, run in this process (one torch import for a whole test file)."
    r = _segwl_here([str(a) for a in argv], None, None)
    return r.returncode, r.stdout, r.stderr


@pytest.fixture
def one_thread():
    "torch on one thread for a test (xdist's workers share the cores), then back to what it was."
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope='module')
def engine_images(tmp_path_factory):
    "The Ray engine tests' folder: six scenes, a file that is not an image and two files with one stem (error rows)."
    from PIL import Image
    from segwl.testing import scene_folder, synthetic_scene
    d = tmp_path_factory.mktemp('engine')/'images'
    scene_folder(d, [(40, 60), (64, 30), (30, 90), (48, 48), (56, 40), (36, 72)], seed=20)
    (d/'broken.png').write_text('no image')
    Image.fromarray(synthetic_scene((30, 30), seed=5)[0]).save(d/'twin.png')
    Image.fromarray(synthetic_scene((30, 30), seed=6)[0]).save(d/'twin.jpg')
    return d
