"""``traceany demo``: the simulator camera, the tracer and the planner on a real ROS 2 graph.

What happens (every arrow is a DDS topic or service between OS processes):

1. This process owns a seeded PyBullet pick-and-place task (Panda, boxes, a
   camera) and acts as its camera driver: it publishes RGB, aligned depth and
   camera_info on the realsense-ros topics at ``--rate`` Hz of simulated time.
2. ``tracer_node`` (its own process) turns the stream into trajectory fields on
   ``/traceany_tracer/trajectory_field``; this process subscribes like any user.
3. This process sends the goal image to the planner's ``/planner/plan_goal``
   action; the planner puts it after the live clip, predicts the field, fits
   the object's rigid motion from the field's tracks and returns end-effector
   waypoints (feedback: predicting, planning), which this process executes with
   the simulated Panda while it keeps streaming, so the tracer sees the object
   being carried.
4. Pictures and a summary land in ``--out``.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np

TRACER_NAME = "traceany_tracer"


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the end-to-end demo: sim camera -> tracer -> planner -> Panda, pictures",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="demo_out", help="output directory for pictures and summary.json")
    p.add_argument("--task", default="pick-place-goal", help="task of the simulator (see traceany eval-policy)")
    p.add_argument("--seed", type=int, default=1, help="task seed")
    p.add_argument("--backend", default="flow-rigid", choices=("auto", "model", "flow", "flow-rigid"),
                   help="predictor of the tracer (default flow-rigid: the classical tracker, steadier in the stream; "
                        "model: the shipped network, see MODEL.md); auto = the shipped model when present")
    p.add_argument("--planner-backend", default="model", choices=("auto", "model", "flow", "flow-rigid"),
                   help="predictor of the planner's goal plan (default model: the shipped network plans from its own "
                        "field of the live clip and the goal image)")
    p.add_argument("--rate", type=float, default=15.0, help="camera rate in Hz of simulated time")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of the still scene streamed before planning")
    p.add_argument("--realtime", type=float, default=1.0,
                   help="pace the simulation at this multiple of real time (0 = as fast as possible)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the tracer to come up")
    p.set_defaults(func=run)


def _log(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def _pick_backend(choice: str) -> str:
    if choice != "auto":
        return choice
    try:
        from traceany_ros.model import default_checkpoint

        return "model" if Path(default_checkpoint()).is_file() else "flow-rigid"
    except (ImportError, FileNotFoundError):
        return "flow-rigid"


class _Graph:
    """The demo graph's node processes (``config/graphs/demo.yaml``); always stopped on exit."""

    def __init__(self, log_dir: Path):
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.log_dir = log_dir

    def start(self, overrides: dict) -> None:
        from traceany_ros.commands.up import commands

        cmds, env_add = commands("demo", overrides)
        env = dict(os.environ, PYTHONUNBUFFERED="1", **env_add)
        os.environ.update(env_add)  # this process joins the same DDS transport settings
        for name, argv in cmds:
            log = open(self.log_dir / f"{name}.log", "w")
            self.procs.append((name, subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                                      start_new_session=True)))
            _log(f"started {name} (pid {self.procs[-1][1].pid}): python -m {argv[2]}")

    def check(self) -> None:
        for name, p in self.procs:
            if p.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text()[-2000:]
                raise RuntimeError(f"{name} exited with code {p.returncode}; its log ends:\n{tail}")

    def stop(self) -> None:
        from traceany_ros.commands.up import stop_processes

        stop_processes(self.procs, grace=10.0)


def run(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    backend = _pick_backend(args.backend)
    args.planner_backend = _pick_backend(args.planner_backend)
    graph = _Graph(out)
    t_start = time.monotonic()
    try:
        summary = _run(args, out, backend, graph)
    finally:
        graph.stop()
    summary["wall_s"] = round(time.monotonic() - t_start, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _log(f"{'SUCCESS' if summary['success'] else 'FAILED'}: {summary['task']} seed {summary['seed']}, "
         f"tracer {backend}, planner {summary['planner_backend']}, position error {summary['pos_error_cm']:.1f} cm, "
         f"{summary['fields_received']} trajectory fields received; pictures in {out}/")
    return 0 if summary["success"] else 1


def _run(args, out: Path, backend: str, graph: _Graph) -> dict:
    import rclpy

    from traceany_ros.msg import TrajectoryField as TrajectoryFieldMsg
    from traceany_ros.nodes.camera import CameraPublisher, CameraTopicsConfig
    from traceany_ros.nodes.convert import depth_to_image, field_from_msg, matrix_to_pose, rgb_to_image
    from traceany_ros.nodes.planner import plan_from_msg
    from traceany_ros.sim.tasks import make_task
    from traceany_ros.sim.tasks.env import RealtimePacer
    from traceany_ros.sources import Frame
    from rclpy.action import ActionClient

    from traceany_ros.action import PlanGoal

    _log(f"task {args.task} seed {args.seed}, tracer backend {backend}, planner backend {args.planner_backend}")
    task = make_task(args.task, seed=args.seed)
    env = task.env
    obs0 = task.render()
    goal = task.goal_observation
    T = obs0.cam_to_world

    q = matrix_to_pose(T).orientation
    graph.start({"backend": backend, "planner_backend": args.planner_backend,
                 "camera_position": [float(v) for v in T[:3, 3]],
                 "camera_orientation": [q.x, q.y, q.z, q.w]})

    rclpy.init(args=[])
    node = rclpy.create_node("traceany_demo_camera")
    topics = CameraTopicsConfig()  # realsense-ros topics and frames, SensorDataQoS
    cam = CameraPublisher(node, topics)
    fields = []
    node.create_subscription(TrajectoryFieldMsg, f"/{TRACER_NAME}/trajectory_field",
                             lambda m: fields.append(field_from_msg(m)), 10)
    client = ActionClient(node, PlanGoal, "/planner/plan_goal")
    frames: dict[float, np.ndarray] = {}
    sent = {"n": 0}
    pace = RealtimePacer(args.realtime)

    def publish(obs) -> None:
        stamp = node.get_clock().now().nanoseconds * 1e-9
        cam.publish(Frame(rgb=obs.rgb, depth=obs.depth, intrinsics=obs.intrinsics, cam_to_world=obs.cam_to_world,
                          stamp=obs.time, index=sent["n"]), stamp)
        frames[round(stamp, 6)] = obs.rgb
        sent["n"] += 1
        pace(env.time)  # simulated seconds -> wall seconds
        rclpy.spin_once(node, timeout_sec=0.0)

    every = max(1, int(round(1.0 / (args.rate * env.config.time_step))))
    env.add_step_hook(lambda: publish(env.render(with_seg=False)) if env.steps % every == 0 else None)

    try:
        _log("waiting for the tracer and the planner ...")
        deadline = time.monotonic() + args.timeout
        while (cam.color.get_subscription_count() < 2 or cam.depth.get_subscription_count() < 2
               or not client.server_is_ready()):
            graph.check()
            rclpy.spin_once(node, timeout_sec=0.1)
            if time.monotonic() > deadline:
                raise RuntimeError(f"tracer and planner did not come up within {args.timeout:.0f} s; "
                                   f"see {out}/traceany_tracer.log and {out}/planner.log")
        _log(f"streaming the still scene for {args.warmup:.1f} s")
        env.wait(args.warmup)

        _log("sending the goal image to /planner/plan_goal (it becomes the clip's last frame)")
        request = PlanGoal.Goal(goal_rgb=rgb_to_image(goal.rgb, 0.0, topics.frame_id),
                                goal_depth=depth_to_image(goal.depth, 0.0, topics.frame_id), task=task.kind)
        t_call = time.monotonic()
        plan = plan_from_msg(_plan_goal(node, client, request, graph, args.timeout))
        plan.planning_time_s = time.monotonic() - t_call
        view = task.render()
        if not plan.success:
            _log(f"no plan: {plan.message}")
        else:
            _log(f"plan: {len(plan.waypoints)} waypoints, object moves "
                 f"{100 * np.linalg.norm(plan.object_motion[:3, 3]):.1f} cm, fit rmse {1000 * plan.fit_rmse:.1f} mm, "
                 f"{plan.planning_time_s:.2f} s round trip ({plan.message})")
        _log("executing with the simulated Panda while streaming")
        metrics = task.execute(plan)
        env.wait(0.5)
        t_end = time.monotonic() + 3.0
        while time.monotonic() < t_end:  # let the last windows arrive
            rclpy.spin_once(node, timeout_sec=0.1)
        graph.check()
        final = task.render()
    finally:
        node.destroy_node()
        rclpy.try_shutdown()

    _log(f"{sent['n']} frames published, {len(fields)} fields received")
    pictures = _pictures(out, plan, view, goal, final, fields, frames, bool(metrics["success"]))
    return {"task": args.task, "seed": args.seed, "backend": backend, "planner_backend": args.planner_backend,
            "success": bool(metrics["success"]),
            "grasp_success": bool(metrics["grasp_success"]), "pos_error_cm": float(metrics["pos_error_cm"]),
            "rot_error_deg": float(metrics["rot_error_deg"]), "plan_found": bool(plan.success),
            "plan_message": plan.message, "plan_method": plan.info.get("method", ""),
            "planning_time_s": round(float(plan.planning_time_s), 3),
            "frames_published": sent["n"], "fields_received": len(fields), "pictures": pictures}


def _plan_goal(node, client, goal, graph: _Graph, timeout: float):
    """Send a PlanGoal goal, log its feedback, and spin until its GraspPlan (or a clear error)."""
    import rclpy

    def wait(future, what: str):
        deadline = time.monotonic() + timeout
        while not future.done():
            rclpy.spin_once(node, timeout_sec=0.1)
            graph.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"/planner/plan_goal: {what} within {timeout:.0f} s")
        return future.result()

    def feedback(fb):
        _log(f"planner: {fb.feedback.stage} ({fb.feedback.clip_frames} live frames, {fb.feedback.elapsed_s:.1f} s)")

    handle = wait(client.send_goal_async(goal, feedback_callback=feedback), "no answer to the goal")
    if not handle.accepted:
        raise RuntimeError("/planner/plan_goal rejected the goal; see planner.log")
    return wait(handle.get_result_async(), "no result").result.plan


def _pictures(out: Path, plan, view, goal, final, fields, frames, success: bool) -> list[str]:
    import imageio.v3 as iio

    from traceany_ros import viz

    written = []
    # 1. the plan: end-effector path over the view it was planned on, the goal, the result
    if plan.success:
        from traceany_ros.policies.viz import draw_plan

        a = draw_plan(view.rgb, view.intrinsics, view.cam_to_world, plan)
        g, f = viz.upscale(goal.rgb), viz.upscale(final.rgb)
        verdict = "SUCCESS" if success else "FAILED"
        iio.imwrite(out / "plan.png", np.concatenate([
            viz.label(a, f"plan: {' > '.join(w.label for w in plan.waypoints)}"),
            viz.label(g, "goal image"), viz.label(f, f"after execution: {verdict}")], 1))
        written.append("plan.png")
    # 2. the live fields from the tracer, drawn on the frame they were computed at
    def frame_at(t: float) -> np.ndarray:
        return frames[min(frames, key=lambda s: abs(s - t))]

    if fields:
        def moving_curves(fld, most: int):
            conf = fld.confidence[-1]
            thr = float(np.percentile(conf[conf > 0], 25)) if (conf > 0).any() else 0.0
            return viz.field_curves(fld, frame=fld.num_frames - 1, max_curves=most, min_confidence=thr,
                                    min_motion=0.02)

        # the field that shows the most confident motion (the object being carried)
        best = max(fields, key=lambda f: len(moving_curves(f, 10**9)[0]))
        last = best.num_frames - 1
        curves, own = moving_curves(best, 300)
        pic = viz.draw_curves(frame_at(float(best.times[last])), curves, view.intrinsics, view.cam_to_world, dot_index=own)
        iio.imwrite(out / "trajectories.png", viz.label(pic, f"tracer field: {len(curves)} moving curves"))
        written.append("trajectories.png")
        # the same field fused at its last time: every frame's curves evaluated at one instant
        from traceany_ros.policies import fusion

        rgb = np.stack([frame_at(float(t)) for t in best.times])
        cloud = fusion.fuse(best, float(best.times[-1]), rgb=rgb)
        fusion.save_ply(cloud, out / "fused_cloud.ply")
        extra = {"plan": np.stack([w.position for w in plan.waypoints])} if plan.success else None
        fusion.render_png(cloud, out / "fused_cloud.png", extra=extra,
                          title=f"fused cloud at the field's last time ({best.num_frames} frames)")
        written += ["fused_cloud.ply", "fused_cloud.png"]
    # 3. the execution as a GIF
    stamps = sorted(frames)
    if stamps:
        sel = stamps[:: max(1, len(stamps) // 60)]
        iio.imwrite(out / "execution.gif", np.stack([frames[s] for s in sel]), duration=80, loop=0)
        written.append("execution.gif")
    return written
