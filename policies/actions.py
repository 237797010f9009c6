"""The action catalog: ECR and ECS actions Berth knows, for validating `Action` values.

AWS rejects unknown vendors and actions; Berth validates names for the services it implements
(iam-policy-evaluation.md §2.2: "Berth: validate against the ECR/ECS action list"). Actions of
other vendors (`s3:GetObject`, `iam:*`) are accepted when well-formed: real identity policies
mix services, and such statements simply never match a Berth request.

The lists are the API operations of botocore's `ecr` 2015-09-21 and `ecs` 2014-11-13 models,
plus IAM-only permissions that have no API operation of their own.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["DEFAULT_CATALOG", "ECR_ACTIONS", "ECS_ACTIONS"]

ECR_ACTIONS = frozenset(
    """
    BatchCheckLayerAvailability BatchDeleteImage BatchGetImage BatchGetRepositoryScanningConfiguration
    CompleteLayerUpload CreatePullThroughCacheRule CreateRepository CreateRepositoryCreationTemplate
    DeleteLifecyclePolicy DeletePullThroughCacheRule DeleteRegistryPolicy DeleteRepository
    DeleteRepositoryCreationTemplate DeleteRepositoryPolicy DeleteSigningConfiguration
    DeregisterPullTimeUpdateExclusion DescribeImageReplicationStatus DescribeImageScanFindings
    DescribeImageSigningStatus DescribeImages DescribePullThroughCacheRules DescribeRegistry
    DescribeRepositories DescribeRepositoryCreationTemplates GetAccountSetting GetAuthorizationToken
    GetDownloadUrlForLayer GetLifecyclePolicy GetLifecyclePolicyPreview GetRegistryPolicy
    GetRegistryScanningConfiguration GetRepositoryPolicy GetSigningConfiguration InitiateLayerUpload
    ListImageReferrers ListImages ListPullTimeUpdateExclusions ListTagsForResource PutAccountSetting
    PutImage PutImageScanningConfiguration PutImageTagMutability PutLifecyclePolicy PutRegistryPolicy
    PutRegistryScanningConfiguration PutReplicationConfiguration PutSigningConfiguration
    RegisterPullTimeUpdateExclusion SetRepositoryPolicy StartImageScan StartLifecyclePolicyPreview
    TagResource UntagResource UpdateImageStorageClass UpdatePullThroughCacheRule
    UpdateRepositoryCreationTemplate UploadLayerPart ValidatePullThroughCacheRule
    BatchImportUpstreamImage ReplicateImage
    """.split()
)

ECS_ACTIONS = frozenset(
    """
    ContinueServiceDeployment CreateCapacityProvider CreateCluster CreateDaemon
    CreateExpressGatewayService CreateService CreateTaskSet DeleteAccountSetting DeleteAttributes
    DeleteCapacityProvider DeleteCluster DeleteDaemon DeleteDaemonTaskDefinition
    DeleteExpressGatewayService DeleteService DeleteTaskDefinitions DeleteTaskSet
    DeregisterContainerInstance DeregisterTaskDefinition DescribeCapacityProviders DescribeClusters
    DescribeContainerInstances DescribeDaemon DescribeDaemonDeployments DescribeDaemonRevisions
    DescribeDaemonTaskDefinition DescribeExpressGatewayService DescribeServiceDeployments
    DescribeServiceRevisions DescribeServices DescribeTaskDefinition DescribeTaskSets DescribeTasks
    DiscoverPollEndpoint ExecuteCommand GetTaskProtection ListAccountSettings ListAttributes
    ListClusters ListContainerInstances ListDaemonDeployments ListDaemonTaskDefinitions ListDaemons
    ListServiceDeployments ListServices ListServicesByNamespace ListTagsForResource
    ListTaskDefinitionFamilies ListTaskDefinitions ListTasks PutAccountSetting
    PutAccountSettingDefault PutAttributes PutClusterCapacityProviders RegisterContainerInstance
    RegisterDaemonTaskDefinition RegisterTaskDefinition RunTask StartTask StopServiceDeployment
    StopTask SubmitAttachmentStateChanges SubmitContainerStateChange SubmitTaskStateChange
    TagResource UntagResource UpdateCapacityProvider UpdateCluster UpdateClusterSettings
    UpdateContainerAgent UpdateContainerInstancesState UpdateDaemon UpdateExpressGatewayService
    UpdateService UpdateServicePrimaryTaskSet UpdateTaskProtection UpdateTaskSet
    Poll StartTelemetrySession
    """.split()
)

# vendor (lower-case) -> action names; vendors not listed are checked for syntax only.
DEFAULT_CATALOG: Mapping[str, frozenset[str]] = {"ecr": ECR_ACTIONS, "ecs": ECS_ACTIONS}
