"""The training pipeline: data → features → training set → HPO → train → evaluate + gates →
(gates pass) export ONNX → register → canary deploy, (gates fail) report why.

Only wiring lives here; every step is a component calling into ``e2eai``.
"""

from kfp import dsl

from components import (
    build_features,
    configure_run,
    deploy_canary,
    evaluate_model,
    export_onnx,
    prepare_data,
    register_model,
    report_gate_failure,
    retrieve_training_set,
    train_model,
    tune_hyperparameters,
)

PIPELINE_NAME = "e2eai-training"


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="One task's model (flights, credit, fashion, …): prepare data, build Feast "
    "features, train (+HPO, warm start), evaluate against gates, and only when they pass "
    "export, register and canary.",
)
def training_pipeline(
    task: str = "",
    data_start: str = "",
    data_end: str = "",
    train_start: str = "",
    train_end: str = "",
    family: str = "",
    hpo_trials: int = -1,
    warm_start_version: int = 0,
    canary_percent: int = 10,
    settings_json: str = "{}",
):
    """Train, gate and (when the gates pass) canary-deploy a model for the run's windows.

    KFP reads the Args below into the compiled pipeline's parameter descriptions: they are
    what the Kubeflow UI shows beside each run parameter.

    Args:
        task: Registered task to train (e.g. flights, credit, fashion); empty keeps the
            task setting. The same pipeline serves every task.
        data_start: First day of data to ingest (YYYY-MM-DD, scheduled departure); empty
            keeps the data.start setting.
        data_end: Last day of data to ingest, inclusive (YYYY-MM-DD); empty keeps the
            data.end setting.
        train_start: First day of the training window (YYYY-MM-DD); empty keeps the
            training.train_start setting.
        train_end: Last day of the training window (YYYY-MM-DD); the holdout is the data
            after it. Empty keeps the training.train_end setting.
        family: Model family to train, e.g. torch_mlp, hist_gb or logreg; empty keeps the
            training.family setting.
        hpo_trials: Optuna trials before training; 0 skips the search, -1 keeps the
            setting.
        warm_start_version: Registry version to fine-tune (warm start); 0 trains from
            scratch.
        canary_percent: Share of traffic, 1 to 100, that the new version gets as the canary
            when the gates pass.
        settings_json: Settings overrides as a JSON object of sections, e.g.
            {"training": {"epochs": 2}}; the parameters above win over the same fields.
    """
    configure = configure_run(
        settings_json=settings_json,
        data_start=data_start,
        data_end=data_end,
        train_start=train_start,
        train_end=train_end,
        family=family,
        hpo_trials=hpo_trials,
        task=task,
    ).set_display_name("configure")
    settings = configure.output

    data = prepare_data(settings_json=settings).set_display_name("ingest + validate")
    features = build_features(
        settings_json=settings, prepared=data.outputs["prepared"]
    ).set_display_name("features (Feast apply + materialize)")
    training_set = retrieve_training_set(
        settings_json=settings,
        features_key=features.outputs["features_key"],
        snapshot=data.outputs["snapshot"],
    ).set_display_name("training set")
    frame = training_set.outputs["training_frame"]

    hpo = tune_hyperparameters(settings_json=settings, training_frame=frame)
    hpo.set_display_name("HPO (Optuna)")
    train = train_model(
        settings_json=settings,
        training_frame=frame,
        best_params_json=hpo.outputs["Output"],
        warm_start_version=warm_start_version,
    ).set_display_name("train (distributed)")
    evaluate = evaluate_model(settings_json=settings, model=train.outputs["model"])
    evaluate.set_display_name("evaluate + gates")

    with dsl.If(evaluate.outputs["Output"] == True, name="gates-passed"):  # noqa: E712
        onnx = export_onnx(settings_json=settings, model=train.outputs["model"])
        onnx.set_display_name("export ONNX (+parity, int8)")
        register = register_model(
            settings_json=settings,
            model=train.outputs["model"],
            onnx_model=onnx.outputs["onnx_model"],
        ).set_display_name("register")
        deploy = deploy_canary(
            settings_json=settings,
            model_version=register.outputs["Output"],
            canary_percent=canary_percent,
        ).set_display_name("deploy canary")
        deploy.set_caching_options(False)
    with dsl.Else(name="gates-failed"):
        report_gate_failure(gates=evaluate.outputs["gates"]).set_display_name("not registered")

    # KFP's cache keys on parameters, not on content: the raw data behind the same URI, the
    # registry's champion and the deployment all change between runs. Re-use is decided by
    # e2eai's content-hash step cache instead (data, features, training set).
    for task in (data, features, training_set, hpo, train, evaluate, onnx, register):
        task.set_caching_options(False)
